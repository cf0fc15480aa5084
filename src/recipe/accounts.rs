//! Users and groups: resolving `owner: user[:group]` to ids, checking `accounts`, and
//! rendering `etc/passwd` and `etc/group` merged with the base image's files.
//!
//! Decisions (see docs/recipe.md, "accounts"):
//! - No `etc/shadow` is written, as apko does: users get `x` in the password field and no
//!   shadow line, so password login is impossible; images that need shadow entries can add
//!   the file with a `file` step.
//! - When the base has no `etc/passwd` (scratch), the file starts with
//!   `root:x:0:0:root:/root:/bin/sh` and `etc/group` with `root:x:0:`, because much software
//!   looks up uid 0 by name. A base that has the file is taken as it is.
//! - Recipe users and groups are appended after the base's lines in recipe order; one with
//!   the same name and id as a base line replaces that line in place. The same name with a
//!   different id, or the same id under a different name, is an error.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::model::{Accounts, User};
use super::validate::{check_account_name, image_path, Problem};
use crate::layer::{Content, Entry, EntryKind};

/// The default login shell of recipe users.
pub const DEFAULT_SHELL: &str = "/bin/sh";

/// Numeric ids and, when the recipe named them, names for tar headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
}

impl Owner {
    pub fn apply(&self, e: &mut Entry) {
        e.uid = self.uid;
        e.gid = self.gid;
        e.uname = self.uname.clone();
        e.gname = self.gname.clone();
    }
}

/// The user's primary gid: `gid`, or the uid when not given.
pub fn primary_gid(user: &User) -> u32 {
    user.gid.unwrap_or(user.uid)
}

/// Groups the recipe defines: the explicit ones, plus a group named after each user whose
/// primary gid no explicit group has (in user order). `(name, gid, members)`.
pub fn all_groups(accounts: &Accounts) -> Vec<(String, u32, Vec<String>)> {
    let mut out: Vec<(String, u32, Vec<String>)> = accounts
        .groups
        .iter()
        .map(|g| (g.name.clone(), g.gid, g.members.clone()))
        .collect();
    for u in &accounts.users {
        let gid = primary_gid(u);
        if !out.iter().any(|(_, g, _)| *g == gid) {
            out.push((u.name.clone(), gid, Vec::new()));
        }
    }
    out
}

fn group_name_of(accounts: Option<&Accounts>, gid: u64) -> Option<String> {
    if gid == 0 {
        return Some("root".into());
    }
    all_groups(accounts?)
        .into_iter()
        .find(|(_, g, _)| u64::from(*g) == gid)
        .map(|(n, _, _)| n)
}

/// Resolves `user[:group]`. Names must be defined under `accounts` (or be `root`); numbers
/// are taken as ids. A user without a group gets its primary group (a number alone gets the
/// same number as gid, as Docker does). Names are kept only for parts given by name.
pub fn resolve_owner(spec: &str, accounts: Option<&Accounts>) -> Result<Owner, Problem> {
    let hint_user = "define the user under `accounts.users`, or use a numeric uid";
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(Problem::new(
            format!("owner `{spec}` has no user"),
            "write `user`, `user:group`, `uid` or `uid:gid`",
        ));
    }
    let mut owner = Owner::default();
    let mut user_gid;
    if let Some(uid) = parse_id(user) {
        owner.uid = uid;
        user_gid = uid;
    } else if user == "root" {
        owner.uname = "root".into();
        user_gid = 0;
    } else {
        let u = accounts
            .and_then(|a| a.users.iter().find(|u| u.name == user))
            .ok_or_else(|| {
                Problem::new(
                    format!("unknown user `{user}` in owner `{spec}`"),
                    hint_user,
                )
            })?;
        owner.uid = u64::from(u.uid);
        owner.uname = u.name.clone();
        user_gid = u64::from(primary_gid(u));
    }
    match group {
        None => {
            owner.gid = user_gid;
            if !owner.uname.is_empty() {
                owner.gname = group_name_of(accounts, user_gid).unwrap_or_default();
            }
        }
        Some(g) => {
            if let Some(gid) = parse_id(g) {
                owner.gid = gid;
            } else {
                let gid = if g == "root" {
                    Some(0)
                } else {
                    accounts.and_then(|a| {
                        all_groups(a)
                            .into_iter()
                            .find(|(n, _, _)| n == g)
                            .map(|(_, gid, _)| u64::from(gid))
                    })
                };
                user_gid = gid.ok_or_else(|| {
                    Problem::new(
                        format!("unknown group `{g}` in owner `{spec}`"),
                        "define the group under `accounts.groups` (or a user of that name), or use a numeric gid",
                    )
                })?;
                owner.gid = user_gid;
                owner.gname = g.to_string();
            }
        }
    }
    Ok(owner)
}

fn parse_id(s: &str) -> Option<u64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u32>().ok().map(u64::from)
    } else {
        None
    }
}

/// Checks names, uniqueness and paths. Errors carry the value path below `accounts`
/// (`users[1].uid`) so the caller can locate them.
pub fn check_accounts(accounts: &Accounts) -> Result<(), (String, Problem)> {
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for (i, g) in accounts.groups.iter().enumerate() {
        check_account_name(&g.name).map_err(|p| (format!("groups[{i}].name"), p))?;
        if !names.insert(g.name.as_str()) {
            return Err((
                format!("groups[{i}].name"),
                Problem::new(
                    format!("group `{}` is defined twice", g.name),
                    "give each group one entry",
                ),
            ));
        }
        if !ids.insert(g.gid) {
            return Err((
                format!("groups[{i}].gid"),
                Problem::new(
                    format!("gid {} is used by two groups", g.gid),
                    "give each group its own gid",
                ),
            ));
        }
        for (j, m) in g.members.iter().enumerate() {
            check_account_name(m).map_err(|p| (format!("groups[{i}].members[{j}]"), p))?;
        }
    }
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for (i, u) in accounts.users.iter().enumerate() {
        check_account_name(&u.name).map_err(|p| (format!("users[{i}].name"), p))?;
        if !names.insert(u.name.as_str()) {
            return Err((
                format!("users[{i}].name"),
                Problem::new(
                    format!("user `{}` is defined twice", u.name),
                    "give each user one entry",
                ),
            ));
        }
        if !ids.insert(u.uid) {
            return Err((
                format!("users[{i}].uid"),
                Problem::new(
                    format!("uid {} is used by two users", u.uid),
                    "give each user its own uid",
                ),
            ));
        }
        if let Some(home) = &u.home {
            image_path(home).map_err(|p| (format!("users[{i}].home"), p))?;
        }
        if let Some(shell) = &u.shell {
            image_path(shell).map_err(|p| (format!("users[{i}].shell"), p))?;
        }
        if let Some(gecos) = &u.gecos {
            if gecos.contains([':', '\n']) {
                return Err((
                    format!("users[{i}].gecos"),
                    Problem::new(
                        "gecos contains `:` or a newline",
                        "remove them; they break etc/passwd",
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn home_of(u: &User) -> String {
    u.home
        .clone()
        .unwrap_or_else(|| format!("/home/{}", u.name))
}

/// Line index and id of the line with a given name.
type NameHit = Option<(usize, Option<u32>)>;
/// Line index and name of the first line with a given id.
type IdHit = Option<(usize, String)>;

/// A colon-separated database (passwd or group) as lines, with the lines' names and ids.
struct Db {
    lines: Vec<String>,
}

impl Db {
    fn parse(text: &str) -> Db {
        Db {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// (index, id) of the line for `name`, and of the first line with `id`.
    fn find(&self, name: &str, id: u32, id_field: usize) -> (NameHit, IdHit) {
        let mut by_name = None;
        let mut by_id = None;
        for (i, line) in self.lines.iter().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(':').collect();
            let line_id = fields.get(id_field).and_then(|f| f.parse::<u32>().ok());
            if fields[0] == name && by_name.is_none() {
                by_name = Some((i, line_id));
            }
            if line_id == Some(id) && by_id.is_none() {
                by_id = Some((i, fields[0].to_string()));
            }
        }
        (by_name, by_id)
    }

    /// Replaces the same-name line or appends; refuses id clashes.
    fn put(
        &mut self,
        what: &str,
        name: &str,
        id: u32,
        id_field: usize,
        line: String,
    ) -> Result<(), String> {
        let (by_name, by_id) = self.find(name, id, id_field);
        if let Some((i, old)) = by_name {
            if old != Some(id) {
                return Err(format!(
                    "{what} `{name}` has id {id} in the recipe but {} in the base image; use the base's id or another name",
                    old.map_or_else(|| "an unreadable id".to_string(), |o| o.to_string())
                ));
            }
            self.lines[i] = line;
            return Ok(());
        }
        if let Some((_, other)) = by_id {
            return Err(format!(
                "{what} id {id} of `{name}` already belongs to `{other}` in the base image; pick another id or reuse `{other}`"
            ));
        }
        self.lines.push(line);
        Ok(())
    }

    fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }
}

/// Renders `etc/passwd`, `etc/group`, the `etc` directory, and home directories for users
/// with `create_home` (mode 0750, owned by the user; missing parents 0755 root). Returns the
/// entries sorted by path, every mtime `sde`. Call it only when the recipe has `accounts`.
pub fn render_accounts(
    accounts: &Accounts,
    base_passwd: Option<&str>,
    base_group: Option<&str>,
    sde: u64,
) -> Result<Vec<Entry>, String> {
    check_accounts(accounts).map_err(|(path, p)| format!("accounts.{path}: {p}"))?;
    let mut passwd = Db::parse(base_passwd.unwrap_or("root:x:0:0:root:/root:/bin/sh\n"));
    let mut group = Db::parse(base_group.unwrap_or("root:x:0:\n"));

    for (name, gid, members) in all_groups(accounts) {
        let line = format!("{name}:x:{gid}:{}", members.join(","));
        group.put("group", &name, gid, 2, line)?;
    }
    for u in &accounts.users {
        let line = format!(
            "{}:x:{}:{}:{}:{}:{}",
            u.name,
            u.uid,
            primary_gid(u),
            u.gecos.as_deref().unwrap_or(""),
            home_of(u),
            u.shell.as_deref().unwrap_or(DEFAULT_SHELL),
        );
        passwd.put("user", &u.name, u.uid, 2, line)?;
    }

    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let put = |entries: &mut BTreeMap<String, Entry>, mut e: Entry| {
        e.mtime = sde;
        entries.insert(e.path.clone(), e);
    };
    put(&mut entries, Entry::new("etc", EntryKind::Dir, 0o755));
    for (path, text) in [
        ("etc/passwd", passwd.render()),
        ("etc/group", group.render()),
    ] {
        let bytes: Arc<[u8]> = Arc::from(text.into_bytes());
        let size = bytes.len() as u64;
        put(
            &mut entries,
            Entry::new(
                path,
                EntryKind::File {
                    content: Content::Bytes(bytes),
                    size,
                },
                0o644,
            ),
        );
    }
    let groups = all_groups(accounts);
    let mut homes = Vec::new();
    for u in accounts.users.iter().filter(|u| u.create_home) {
        let home = image_path(&home_of(u)).map_err(|p| p.to_string())?;
        if home.is_empty() {
            continue;
        }
        let gid = primary_gid(u);
        let mut e = Entry::new(home.clone(), EntryKind::Dir, 0o750);
        e.uid = u64::from(u.uid);
        e.gid = u64::from(gid);
        e.uname = u.name.clone();
        e.gname = groups
            .iter()
            .find(|(_, g, _)| *g == gid)
            .map(|(n, _, _)| n.clone())
            .unwrap_or_default();
        homes.push(e);
    }
    for e in homes {
        let mut parent = e.path.as_str();
        while let Some(i) = parent.rfind('/') {
            parent = &parent[..i];
            if !entries.contains_key(parent) {
                put(&mut entries, Entry::new(parent, EntryKind::Dir, 0o755));
            }
        }
        put(&mut entries, e);
    }
    Ok(entries.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::model::Group;

    fn user(name: &str, uid: u32) -> User {
        User {
            name: name.into(),
            uid,
            gid: None,
            home: None,
            shell: None,
            gecos: None,
            create_home: true,
        }
    }

    fn text(e: &Entry) -> String {
        match &e.kind {
            EntryKind::File {
                content: Content::Bytes(b),
                ..
            } => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }

    fn accounts() -> Accounts {
        Accounts {
            groups: vec![Group {
                name: "staff".into(),
                gid: 50,
                members: vec!["app".into()],
            }],
            users: vec![user("app", 1000)],
        }
    }

    #[test]
    fn scratch_gets_root_and_recipe_accounts() {
        let got = render_accounts(&accounts(), None, None, 7).expect("renders");
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["etc", "etc/group", "etc/passwd", "home", "home/app"]
        );
        assert_eq!(
            text(&got[2]),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
        );
        assert_eq!(text(&got[1]), "root:x:0:\nstaff:x:50:app\napp:x:1000:\n");
        let home = &got[4];
        assert_eq!((home.mode, home.uid, home.gid), (0o750, 1000, 1000));
        assert_eq!((home.uname.as_str(), home.gname.as_str()), ("app", "app"));
        assert!(got.iter().all(|e| e.mtime == 7));
        assert_eq!(got[3].mode, 0o755);
    }

    #[test]
    fn base_lines_kept_and_same_entry_replaced() {
        let base =
            "root:x:0:0:root:/root:/bin/bash\n# comment\napp:x:1000:1000:old:/srv:/bin/false\n";
        let got =
            render_accounts(&accounts(), Some(base), Some("root:x:0:\n"), 0).expect("renders");
        let passwd = got.iter().find(|e| e.path == "etc/passwd").map(text);
        assert_eq!(
            passwd.as_deref(),
            Some(
                "root:x:0:0:root:/root:/bin/bash\n# comment\napp:x:1000:1000::/home/app:/bin/sh\n"
            )
        );
    }

    #[test]
    fn conflicts_are_errors() {
        let cases = [
            (
                "app:x:1001:1001::/home/app:/bin/sh\n",
                "has id 1000 in the recipe but 1001",
            ),
            (
                "ubuntu:x:1000:1000::/home/ubuntu:/bin/sh\n",
                "already belongs to `ubuntu`",
            ),
        ];
        for (base, want) in cases {
            let err = render_accounts(&accounts(), Some(base), None, 0).expect_err(base);
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn owners() {
        let a = accounts();
        let cases = [
            ("app", Some((1000, 1000, "app", "app"))),
            ("app:staff", Some((1000, 50, "app", "staff"))),
            ("app:7", Some((1000, 7, "app", ""))),
            ("1000", Some((1000, 1000, "", ""))),
            ("12:34", Some((12, 34, "", ""))),
            ("root", Some((0, 0, "root", "root"))),
            ("nobody", None),
            ("app:nogroup", None),
            (":5", None),
        ];
        for (spec, want) in cases {
            let got = resolve_owner(spec, Some(&a)).ok();
            let got = got
                .as_ref()
                .map(|o| (o.uid, o.gid, o.uname.as_str(), o.gname.as_str()));
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn duplicate_accounts() {
        let mut a = accounts();
        a.users.push(user("app", 1001));
        assert_eq!(
            check_accounts(&a).map_err(|e| e.0),
            Err("users[1].name".to_string())
        );
        let mut a = accounts();
        a.users.push(user("other", 1000));
        assert_eq!(
            check_accounts(&a).map_err(|e| e.0),
            Err("users[1].uid".to_string())
        );
    }
}
