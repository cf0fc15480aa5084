//! Steps of one layer → the sorted list of entries the layer writer turns into a tar.
//!
//! Everything that could leak the build machine into the image is decided here: mtimes are
//! the recipe's `SOURCE_DATE_EPOCH`, owners come from the recipe (default 0:0, names only
//! when the recipe named them), modes from the recipe or the source's permission bits, no
//! xattrs. File bytes are never read here: a [`FileDigester`] (the store's stat cache) gives
//! each copied file's digest, and entries point at the file on disk.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::GlobMatcher;
use rayon::prelude::*;

use super::accounts::{resolve_owner, Owner};
use super::model::{CopyStep, PythonStep, Step, TarStep};
use super::parse::{expand_source, is_glob, step_mode, step_path, LoadedRecipe, RecipeError};
use super::validate::{image_path, Problem};
use crate::layer::tarin::{normalize_member_path, read_member, read_to_bytes};
use crate::layer::{Content, Entry, EntryKind};

/// Content digests of files on disk. The store implements it with a stat cache (like git's
/// index) so unchanged files are not read again.
pub trait FileDigester: Sync {
    /// Hex sha256 of the file's bytes.
    fn sha256(&self, path: &Path, meta: &Metadata) -> io::Result<String>;
}

/// Reads and hashes every file; for tests and one-off use.
pub struct ReadDigester;

impl FileDigester for ReadDigester {
    fn sha256(&self, path: &Path, _meta: &Metadata) -> io::Result<String> {
        crate::digest::sha256_file(path).map(|(hex, _)| hex)
    }
}

/// Inputs of steps that come from strata's cache rather than the recipe's directory: the
/// wheels of `python` steps. The build passes the store (`crate::python::StoreWheels`).
pub trait CachedInputs: Sync {
    /// Files of a `python` step (image-relative paths, modes; owners and mtimes are set here).
    fn python_entries(
        &self,
        loaded: &LoadedRecipe,
        step_path: &str,
        step: &PythonStep,
    ) -> Result<Vec<Entry>, RecipeError>;
}

/// No cache: a `python` step is an error.
pub struct NoCachedInputs;

impl CachedInputs for NoCachedInputs {
    fn python_entries(
        &self,
        loaded: &LoadedRecipe,
        step_path: &str,
        _step: &PythonStep,
    ) -> Result<Vec<Entry>, RecipeError> {
        Err(loaded.error_at(
            step_path,
            "a python step needs strata's cache, which this caller did not give",
            "build the recipe with `strata build`",
        ))
    }
}

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
const SYMLINK_MODE: u32 = 0o777;

/// An entry on its way into the layer, with what later stages need.
struct Staged {
    entry: Entry,
    /// (dev, ino) of a copied file with more than one link, for hard-link detection.
    inode: Option<(u64, u64)>,
    /// Value path of the step that made it, for errors (shared by a step's entries).
    step: Arc<str>,
}

/// Resolves layer `layer_index` of the recipe into entries sorted by path, every mtime
/// `sde`. Later steps override earlier entries at the same path; missing parent
/// directories are added (0755, 0:0); copied files sharing an inode become hard links to
/// the bytewise-first path.
pub fn resolve_layer(
    loaded: &LoadedRecipe,
    layer_index: usize,
    digester: &dyn FileDigester,
    sde: u64,
) -> Result<Vec<Entry>, RecipeError> {
    resolve_layer_with(loaded, layer_index, digester, &NoCachedInputs, sde)
}

/// [`resolve_layer`] with the cache's inputs for `python` steps.
pub fn resolve_layer_with(
    loaded: &LoadedRecipe,
    layer_index: usize,
    digester: &dyn FileDigester,
    cached: &dyn CachedInputs,
    sde: u64,
) -> Result<Vec<Entry>, RecipeError> {
    let layer = loaded.recipe.layers.get(layer_index).ok_or_else(|| {
        loaded.error_at(
            "layers",
            format!("the recipe has no layer {layer_index}"),
            "this is a bug in the caller",
        )
    })?;
    let mut staged = Vec::new();
    for (si, step) in layer.steps.iter().enumerate() {
        let path = step_path(layer_index, si, step);
        let before = staged.len();
        match step {
            Step::Copy(c) => copy_step(loaded, &path, c, digester, &mut staged)?,
            Step::File(f) => {
                let mode = step_mode(loaded, &format!("{path}.mode"), f.mode.as_ref())?;
                let bytes: Arc<[u8]> = Arc::from(f.content.as_bytes());
                let size = bytes.len() as u64;
                let e = Entry::new(
                    image_path(&f.path).map_err(|p| problem(loaded, &path, "path", p))?,
                    EntryKind::File {
                        content: Content::Bytes(bytes),
                        size,
                    },
                    mode.unwrap_or(FILE_MODE),
                );
                push(
                    &mut staged,
                    &path,
                    e,
                    owner(loaded, &path, f.owner.as_ref())?,
                );
            }
            Step::Dir(d) => {
                let mode = step_mode(loaded, &format!("{path}.mode"), d.mode.as_ref())?;
                let e = Entry::new(
                    image_path(&d.path).map_err(|p| problem(loaded, &path, "path", p))?,
                    EntryKind::Dir,
                    mode.unwrap_or(DIR_MODE),
                );
                push(
                    &mut staged,
                    &path,
                    e,
                    owner(loaded, &path, d.owner.as_ref())?,
                );
            }
            Step::Symlink(s) => {
                let e = Entry::new(
                    image_path(&s.path).map_err(|p| problem(loaded, &path, "path", p))?,
                    EntryKind::Symlink {
                        target: s.target.clone(),
                    },
                    SYMLINK_MODE,
                );
                push(
                    &mut staged,
                    &path,
                    e,
                    owner(loaded, &path, s.owner.as_ref())?,
                );
            }
            Step::Tar(t) => tar_step(loaded, &path, t, &mut staged)?,
            Step::Debian(_) => {
                // Packages become layers through `debian::` (lock, fetch, extract), which the
                // build calls for this layer instead of `resolve_layer`.
                return Err(loaded.error_at(
                    &path,
                    "a `debian` step is built from its lockfile, not resolved as files",
                    "this is a bug in the caller: build debian layers through strata::debian",
                ));
            }
            Step::Python(py) => {
                for e in cached.python_entries(loaded, &path, py)? {
                    push(&mut staged, &path, e, Owner::default());
                }
            }
            Step::Remove(r) => {
                for (i, p) in r.paths.iter().enumerate() {
                    let rel = image_path(p)
                        .map_err(|pr| problem(loaded, &path, &format!("paths[{i}]"), pr))?;
                    let kind = if r.opaque {
                        EntryKind::OpaqueWhiteout
                    } else {
                        EntryKind::Whiteout
                    };
                    push(
                        &mut staged,
                        &path,
                        Entry::new(rel, kind, 0),
                        Owner::default(),
                    );
                }
            }
        }
        // An empty path is the image root: it has no entry of its own.
        let mut i = before;
        while i < staged.len() {
            if staged[i].entry.path.is_empty() {
                staged.remove(i);
            } else {
                i += 1;
            }
        }
    }

    let mut layer = LayerTree::default();
    for s in staged {
        layer.insert(s);
    }
    layer.finish(loaded, sde)
}

fn problem(l: &LoadedRecipe, step: &str, field: &str, p: Problem) -> RecipeError {
    l.error_at(&format!("{step}.{field}"), p.message, p.hint)
}

fn owner(l: &LoadedRecipe, step: &str, spec: Option<&String>) -> Result<Owner, RecipeError> {
    match spec {
        None => Ok(Owner::default()),
        Some(s) => {
            resolve_owner(s, l.recipe.accounts.as_ref()).map_err(|p| problem(l, step, "owner", p))
        }
    }
}

fn push(staged: &mut Vec<Staged>, step: &str, mut entry: Entry, owner: Owner) {
    owner.apply(&mut entry);
    staged.push(Staged {
        entry,
        inode: None,
        step: Arc::from(step),
    });
}

fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => dir.to_string(),
        _ => {
            let mut s = String::with_capacity(dir.len() + 1 + name.len());
            s.push_str(dir);
            s.push('/');
            s.push_str(name);
            s
        }
    }
}

/// Exclude patterns: one without `/` matches a file name at any depth, one with `/` the
/// whole path below the destination.
struct Excludes(Vec<(bool, GlobMatcher)>);

impl Excludes {
    fn new(l: &LoadedRecipe, step: &str, patterns: &[String]) -> Result<Excludes, RecipeError> {
        let mut out = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let anchored = p.contains('/');
            let glob = globset::GlobBuilder::new(p.trim_start_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(|e| {
                    l.error_at(
                        &format!("{step}.exclude[{i}]"),
                        format!("bad exclude glob: {e}"),
                        "",
                    )
                })?;
            out.push((anchored, glob.compile_matcher()));
        }
        Ok(Excludes(out))
    }

    fn excludes(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.0.iter().any(|(anchored, m)| {
            if *anchored {
                m.is_match(rel)
            } else {
                m.is_match(name)
            }
        })
    }
}

fn copy_step(
    l: &LoadedRecipe,
    step: &str,
    c: &CopyStep,
    digester: &dyn FileDigester,
    staged: &mut Vec<Staged>,
) -> Result<(), RecipeError> {
    let src_path = format!("{step}.src");
    let sources = expand_source(l, &src_path, &c.src)?;
    let dest = image_path(&c.dest).map_err(|p| problem(l, step, "dest", p))?;
    let mode = step_mode(l, &format!("{step}.mode"), c.mode.as_ref())?;
    let dir_mode = step_mode(l, &format!("{step}.dir_mode"), c.dir_mode.as_ref())?;
    let owner = owner(l, step, c.owner.as_ref())?;
    let excludes = Excludes::new(l, step, &c.exclude)?;
    let glob = is_glob(&c.src);
    let into_dir = c.dest.ends_with('/') || glob || sources.len() > 1;
    let root = l.dir.canonicalize().unwrap_or_else(|_| l.dir.clone());

    // Everything the step copies, one chunk per directory read (or per single file).
    let mut chunks: Vec<Vec<Item>> = Vec::new();
    for src in sources {
        let io_err = |e: io::Error, p: &Path| {
            l.error_at(&src_path, format!("cannot read {}: {e}", p.display()), "")
        };
        // The top-level source is followed if it is a symlink (expand_source checked that
        // it resolves inside the recipe's directory); symlinks below it are kept as links.
        let real = src.canonicalize().map_err(|e| io_err(e, &src))?;
        let meta = fs::metadata(&real).map_err(|e| io_err(e, &src))?;
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if meta.is_dir() {
            // A directory's contents land in `dest` (or `dest/<name>` for glob matches).
            let top = if glob {
                join(&dest, &name)
            } else {
                dest.clone()
            };
            let prefix = if glob { name.clone() } else { String::new() };
            let walk = Walk {
                l,
                src_path: &src_path,
                excludes: &excludes,
                top: &top,
                prefix: &prefix,
            };
            walk.dir(&real, &top, &mut chunks)?;
            chunks.push(vec![Item::new(real, top, Found::Dir)]);
        } else {
            if excludes.excludes(&name) {
                continue;
            }
            let target = if into_dir {
                join(&dest, &name)
            } else {
                dest.clone()
            };
            if target.is_empty() {
                return Err(l.error_at(
                    &format!("{step}.dest"),
                    "a single file cannot be copied to `/` itself",
                    "end `dest` with `/` to copy into a directory, e.g. `/usr/bin/`",
                ));
            }
            chunks.push(vec![Item::new(real, target, Found::Stat(meta))]);
        }
    }

    // Digests of the regular files, on all cores: from the store's stat cache when the
    // stat data is unchanged, else read.
    chunks
        .par_iter_mut()
        .flat_map(|c| c.par_iter_mut())
        .try_for_each(|item| -> Result<(), RecipeError> {
            if let Found::Stat(meta) = &item.what {
                if meta.is_file() {
                    item.sha256 = digester.sha256(&item.host, meta).map_err(|e| {
                        l.error_at(
                            &src_path,
                            format!("cannot read {}: {e}", item.host.display()),
                            "check the file's permissions",
                        )
                    })?;
                }
            }
            Ok(())
        })?;

    let cx = FsContext {
        l,
        src_path: &src_path,
        step: Arc::from(step),
        root: &root,
        mode,
        dir_mode,
        owner: &owner,
    };
    staged.reserve(chunks.iter().map(Vec::len).sum());
    for item in chunks.into_iter().flatten() {
        cx.stage(item, staged)?;
    }
    Ok(())
}

/// One object a copy step found.
struct Item {
    host: PathBuf,
    /// Its image path.
    target: String,
    what: Found,
    /// A regular file's content digest (hex), filled in before staging.
    sha256: String,
}

impl Item {
    fn new(host: PathBuf, target: String, what: Found) -> Item {
        Item {
            host,
            target,
            what,
            sha256: String::new(),
        }
    }
}

/// What the walk of a copied directory learnt about one object (never followed if a
/// symlink). Directories and symlinks need no `lstat`: their entries take nothing from
/// it (a directory's mode is 0755 unless the recipe sets one, a symlink's 0777).
enum Found {
    Dir,
    Symlink,
    /// Anything else, with its `lstat`.
    Stat(Metadata),
}

/// The walk of one copied directory. Each directory is read once; its entries are
/// `lstat`ed relative to the open directory (`DirEntry::metadata`, which is `statx` on
/// the directory's descriptor, so the kernel does not look the whole path up again), and
/// its subdirectories are walked on all cores.
struct Walk<'a> {
    l: &'a LoadedRecipe,
    src_path: &'a str,
    excludes: &'a Excludes,
    /// Image path of the walked directory.
    top: &'a str,
    /// What exclude patterns see in front of a path below the walked directory.
    prefix: &'a str,
}

impl Walk<'_> {
    fn io_err(&self, e: io::Error, p: &Path) -> RecipeError {
        self.l.error_at(
            self.src_path,
            format!("cannot read {}: {e}", p.display()),
            "",
        )
    }

    /// Every object below `dir` (image path `target`), one chunk per directory.
    fn dir(
        &self,
        dir: &Path,
        target: &str,
        chunks: &mut Vec<Vec<Item>>,
    ) -> Result<(), RecipeError> {
        let mut here = Vec::new();
        let mut subdirs = Vec::new();
        for e in fs::read_dir(dir).map_err(|e| self.io_err(e, dir))? {
            let e = e.map_err(|e| self.io_err(e, dir))?;
            let host = e.path();
            // Image paths are UTF-8 (PAX); a lossy conversion would rename silently.
            let name = host.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                self.l.error_at(
                    self.src_path,
                    format!("{} has a name that is not UTF-8", host.display()),
                    "rename it, or leave it out with `exclude`",
                )
            })?;
            let child = join(target, name);
            if !self.excludes.0.is_empty() {
                let rel = if self.top.is_empty() {
                    &child[..]
                } else {
                    &child[self.top.len() + 1..]
                };
                if self.excludes.excludes(&join(self.prefix, rel)) {
                    continue;
                }
            }
            // The entry's type from the directory itself (`d_type`); `lstat` only when the
            // file system does not give one.
            let ft = e.file_type().map_err(|err| self.io_err(err, &host))?;
            let what = if ft.is_dir() {
                subdirs.push(here.len());
                Found::Dir
            } else if ft.is_symlink() {
                Found::Symlink
            } else {
                Found::Stat(e.metadata().map_err(|err| self.io_err(err, &host))?)
            };
            here.push(Item::new(host, child, what));
        }
        let below: Vec<Vec<Vec<Item>>> = subdirs
            .par_iter()
            .map(|&i| {
                let mut c = Vec::new();
                self.dir(&here[i].host, &here[i].target, &mut c)?;
                Ok(c)
            })
            .collect::<Result<_, RecipeError>>()?;
        chunks.push(here);
        for b in below {
            chunks.extend(b);
        }
        Ok(())
    }
}

/// What every object a copy step stages shares.
struct FsContext<'a> {
    l: &'a LoadedRecipe,
    src_path: &'a str,
    step: Arc<str>,
    root: &'a Path,
    mode: Option<u32>,
    dir_mode: Option<u32>,
    owner: &'a Owner,
}

/// The mode a source gets when the recipe gives none, normalised the way git stores modes:
/// directories 0755, files 0755 when the owner may execute them, else 0644. The bits on disk
/// depend on the umask of whoever checked the sources out; the image must not.
pub fn normalized_mode(meta: &Metadata) -> u32 {
    if meta.is_dir() || meta.mode() & 0o100 != 0 {
        0o755
    } else {
        0o644
    }
}

impl FsContext<'_> {
    /// One object a copy step found as a staged entry.
    fn stage(&self, item: Item, staged: &mut Vec<Staged>) -> Result<(), RecipeError> {
        let l = self.l;
        let Item {
            host,
            target,
            what,
            sha256,
        } = item;
        let (kind, mode, inode) = match what {
            Found::Dir => (EntryKind::Dir, self.dir_mode.unwrap_or(DIR_MODE), None),
            Found::Symlink => (self.symlink(&host)?, SYMLINK_MODE, None),
            Found::Stat(meta) => {
                let ft = meta.file_type();
                if ft.is_dir() {
                    (EntryKind::Dir, self.dir_mode.unwrap_or(DIR_MODE), None)
                } else if ft.is_symlink() {
                    (self.symlink(&host)?, SYMLINK_MODE, None)
                } else if ft.is_file() {
                    let kind = EntryKind::File {
                        content: Content::Path { path: host, sha256 },
                        size: meta.len(),
                    };
                    let mode = self.mode.unwrap_or(normalized_mode(&meta));
                    // Only a file with more than one link can share its inode with another
                    // copied path; the others need no hard-link lookup.
                    let inode = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
                    (kind, mode, inode)
                } else {
                    let what = if ft.is_fifo() {
                        "a FIFO"
                    } else if ft.is_socket() {
                        "a socket"
                    } else {
                        "a device node"
                    };
                    return Err(l.error_at(
                        self.src_path,
                        format!("{} is {what}, which cannot be copied", host.display()),
                        "leave it out with `exclude`",
                    ));
                }
            }
        };
        let mut entry = Entry::new(target, kind, mode);
        self.owner.apply(&mut entry);
        staged.push(Staged {
            entry,
            inode,
            step: self.step.clone(),
        });
        Ok(())
    }

    fn symlink(&self, host: &Path) -> Result<EntryKind, RecipeError> {
        let link = fs::read_link(host).map_err(|e| {
            self.l.error_at(
                self.src_path,
                format!("cannot read link {}: {e}", host.display()),
                "",
            )
        })?;
        check_link_inside(self.l, self.src_path, self.root, host, &link)?;
        let target = link.to_string_lossy().into_owned();
        Ok(EntryKind::Symlink { target })
    }
}

/// A symlink inside a copied tree must point inside the recipe's directory: an absolute
/// target or one that climbs out names something on the build machine, not in the inputs.
fn check_link_inside(
    l: &LoadedRecipe,
    src_path: &str,
    root: &Path,
    host: &Path,
    link: &Path,
) -> Result<(), RecipeError> {
    let shown = host
        .strip_prefix(root)
        .unwrap_or(host)
        .display()
        .to_string();
    let hint = "make the link relative and inside the recipe's directory, or create it with a `symlink` step (its target is an image path)";
    if link.is_absolute() {
        return Err(l.error_at(
            src_path,
            format!(
                "symlink `{shown}` points to the absolute path {}, outside the recipe's directory",
                link.display()
            ),
            hint,
        ));
    }
    let mut resolved: Vec<Component> = host.parent().unwrap_or(root).components().collect();
    for c in link.components() {
        match c {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(_) => resolved.push(c),
            _ => {}
        }
    }
    let resolved: PathBuf = resolved.iter().collect();
    if !resolved.starts_with(root) {
        return Err(l.error_at(
            src_path,
            format!(
                "symlink `{shown}` -> {} leads outside the recipe's directory",
                link.display()
            ),
            hint,
        ));
    }
    Ok(())
}

enum Compression {
    Plain,
    Gzip,
    Zstd,
}

fn sniff(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::Plain
    }
}

/// A tar member path (or hard-link target) as a relative image path below `dest`; `None`
/// for the archive root (`./`), an error for `..`.
fn member_path(dest: &str, p: &Path) -> Result<Option<String>, String> {
    Ok(normalize_member_path(p, true)?.map(|rel| join(dest, &rel)))
}

fn tar_step(
    l: &LoadedRecipe,
    step: &str,
    t: &TarStep,
    staged: &mut Vec<Staged>,
) -> Result<(), RecipeError> {
    let src_path = format!("{step}.src");
    let sources = expand_source(l, &src_path, &t.src)?;
    let [file] = sources.as_slice() else {
        return Err(l.error_at(
            &src_path,
            format!("`{}` matches more than one file", t.src),
            "name one tarball",
        ));
    };
    let dest = image_path(&t.dest).map_err(|p| problem(l, step, "dest", p))?;
    let owner = owner(l, step, t.owner.as_ref())?;
    let bad = |msg: String| {
        l.error_at(
            &src_path,
            format!("tarball {}: {msg}", file.display()),
            "the tarball must be a plain, gzip or zstd tar whose members stay below its root",
        )
    };
    let mut f = fs::File::open(file).map_err(|e| bad(e.to_string()))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut f, &mut magic).map_err(|e| bad(e.to_string()))?;
    let head = io::Cursor::new(magic[..n].to_vec()).chain(f);
    let reader: Box<dyn Read> = match sniff(&magic[..n]) {
        Compression::Plain => Box::new(head),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(head)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(head).map_err(|e| bad(e.to_string()))?)
        }
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    let step: Arc<str> = Arc::from(step);
    for member in entries {
        let mut member = member.map_err(|e| bad(e.to_string()))?;
        let Some(m) = read_member(&mut member, &mut read_to_bytes).map_err(&bad)? else {
            continue;
        };
        let Some(path) = member_path(&dest, &m.raw_path).map_err(&bad)? else {
            continue;
        };
        let raw_path = m.raw_path.clone();
        let kind = m
            .kind
            .into_entry_kind(|target| {
                member_path(&dest, target)?
                    .ok_or_else(|| format!("hard link `{}` points at the root", raw_path.display()))
            })
            .map_err(&bad)?;
        let mut entry = Entry::new(path, kind, m.mode);
        owner.apply(&mut entry);
        if t.keep_owners {
            entry.uid = m.uid;
            entry.gid = m.gid;
        }
        staged.push(Staged {
            entry,
            inode: None,
            step: step.clone(),
        });
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Files are linked only when inode and every header field agree.
type LinkKey = ((u64, u64), u32, u64, u64, String, String);

/// The entries at one path: a directory and the opaque marker inside it share a path.
#[derive(Default)]
struct Slots {
    normal: Option<Staged>,
    /// Rare (opaque whiteouts), so boxed: every path of a layer has a `Slots`.
    opaque: Option<Box<Staged>>,
}

/// The layer being assembled, keyed by path so iteration is the final order (at one path,
/// the entry before the opaque marker). Looked up by `&str`, so walking a path's ancestors
/// allocates nothing.
#[derive(Default)]
struct LayerTree {
    map: BTreeMap<String, Slots>,
    /// A path that is a directory or absent, and so is each of its ancestors, as the last
    /// [`Self::insert`] left them: a path right below it needs no walk up its ancestors
    /// (the entries of one directory come one after another). Only an insert at it or
    /// above it could change that, and such an insert is not right below it.
    parent_ok: Option<String>,
}

impl LayerTree {
    fn remove_below(&mut self, path: &str) {
        let lo = format!("{path}/");
        let hi = format!("{path}0"); // '0' is the byte after '/'
        let keys: Vec<String> = self.map.range(lo..hi).map(|(k, _)| k.clone()).collect();
        for k in keys {
            self.map.remove(&k);
        }
    }

    fn kind_at(&self, path: &str) -> Option<&EntryKind> {
        self.map
            .get(path)
            .and_then(|s| s.normal.as_ref())
            .map(|s| &s.entry.kind)
    }

    fn slots(&mut self, path: &str) -> &mut Slots {
        if !self.map.contains_key(path) {
            self.map.insert(path.to_string(), Slots::default());
        }
        self.map.get_mut(path).expect("just inserted")
    }

    /// [`Self::slots`] for a path the caller owns: one search of the map.
    fn slots_owned(&mut self, path: String) -> &mut Slots {
        self.map.entry(path).or_default()
    }

    /// Empties one slot, dropping the path when both are empty.
    fn clear(&mut self, path: &str, opaque: bool) {
        if let Some(s) = self.map.get_mut(path) {
            if opaque {
                s.opaque = None;
            } else {
                s.normal = None;
            }
            if s.normal.is_none() && s.opaque.is_none() {
                self.map.remove(path);
            }
        }
    }

    fn mark_opaque(&mut self, path: &str, step: &Arc<str>) {
        let e = Entry::new(path, EntryKind::OpaqueWhiteout, 0);
        self.slots(path).opaque = Some(Box::new(Staged {
            entry: e,
            inode: None,
            step: step.clone(),
        }));
    }

    fn insert(&mut self, s: Staged) {
        let path = s.entry.path.clone();
        if matches!(
            s.entry.kind,
            EntryKind::Whiteout | EntryKind::OpaqueWhiteout
        ) {
            self.parent_ok = None;
        }
        match s.entry.kind {
            EntryKind::Whiteout => {
                self.remove_below(&path);
                let slots = self.slots(&path);
                slots.opaque = None;
                slots.normal = Some(s);
                return;
            }
            EntryKind::OpaqueWhiteout => {
                self.remove_below(&path);
                if !matches!(self.kind_at(&path), Some(EntryKind::Dir)) {
                    self.clear(&path, false);
                }
                self.slots(&path).opaque = Some(Box::new(s));
                return;
            }
            _ => {}
        }
        // Ancestors must be directories: a whiteout there becomes "fresh directory"
        // (opaque), a file or link there is replaced (the later step wins).
        let parent = path.rfind('/').map(|i| &path[..i]);
        // A top-level path may be the known path's root: it always resets it.
        if parent.is_none() || parent != self.parent_ok.as_deref() {
            let mut anc = path.as_str();
            while let Some(i) = anc.rfind('/') {
                anc = &path[..i];
                match self.kind_at(anc) {
                    None | Some(EntryKind::Dir) => {}
                    Some(EntryKind::Whiteout) => {
                        self.clear(anc, false);
                        let step = s.step.clone();
                        self.mark_opaque(anc, &step);
                    }
                    Some(_) => self.clear(anc, false),
                }
            }
            // Every ancestor is now a directory or absent; what follows changes only
            // `path` and below it.
            self.parent_ok = parent.map(str::to_string);
        }
        let is_dir = matches!(s.entry.kind, EntryKind::Dir);
        match self.kind_at(&path) {
            Some(EntryKind::Dir) if !is_dir => {
                self.remove_below(&path);
                self.clear(&path, true);
            }
            Some(EntryKind::Whiteout) if is_dir => {
                let step = s.step.clone();
                self.mark_opaque(&path, &step)
            }
            _ => {}
        }
        self.slots_owned(path).normal = Some(s);
    }

    fn finish(mut self, l: &LoadedRecipe, sde: u64) -> Result<Vec<Entry>, RecipeError> {
        // Directories for opaque markers and every missing parent. Paths come in order, so
        // a path with the same parent as the one before it has nothing new to check, and
        // an ancestor that has an entry was itself visited before (its own ancestors are
        // seen to): the walk up stops there.
        let mut missing = Vec::new();
        let mut last_parent: Option<&str> = None;
        for (path, slots) in &self.map {
            if let Some(s) = &slots.opaque {
                if slots.normal.is_none() {
                    missing.push((path.clone(), s.step.clone()));
                }
            }
            let Some(step) = slots
                .normal
                .as_ref()
                .or(slots.opaque.as_deref())
                .map(|s| &s.step)
            else {
                continue;
            };
            let parent = path.rfind('/').map(|i| &path[..i]);
            if parent.is_none() || parent == last_parent {
                continue;
            }
            last_parent = parent;
            let mut anc = path.as_str();
            while let Some(i) = anc.rfind('/') {
                anc = &path[..i];
                if self.kind_at(anc).is_some() {
                    break;
                }
                missing.push((anc.to_string(), step.clone()));
            }
        }
        for (path, step) in missing {
            let slots = self.slots(&path);
            if slots.normal.is_none() {
                slots.normal = Some(Staged {
                    entry: Entry::new(path, EntryKind::Dir, DIR_MODE),
                    inode: None,
                    step,
                });
            }
        }

        // Copied files sharing an inode (and all header fields) become hard links to the
        // bytewise-first path; iteration order is path order.
        let mut first: HashMap<LinkKey, &str> = HashMap::new();
        for (path, slots) in self.map.iter_mut() {
            let Some(s) = slots.normal.as_mut() else {
                continue;
            };
            let Some(inode) = s.inode else { continue };
            let e = &s.entry;
            let key = (
                inode,
                e.mode,
                e.uid,
                e.gid,
                e.uname.clone(),
                e.gname.clone(),
            );
            match first.get(&key) {
                Some(target) => {
                    s.entry.kind = EntryKind::Hardlink {
                        target: target.to_string(),
                    }
                }
                None => {
                    first.insert(key, path);
                }
            }
        }

        let mut out = Vec::with_capacity(self.map.len());
        for s in self.map.values().filter_map(|s| s.normal.as_ref()) {
            if let EntryKind::Hardlink { target } = &s.entry.kind {
                if !matches!(self.kind_at(target), Some(EntryKind::File { .. })) {
                    return Err(l.error_at(
                        &format!("{}.src", s.step),
                        format!("hard link `/{}` points at `/{target}`, which is not a file in this layer", s.entry.path),
                        "a later step may have replaced the link's target; reorder the steps",
                    ));
                }
            }
        }
        for slots in self.map.into_values() {
            for mut s in [slots.normal, slots.opaque.map(|b| *b)]
                .into_iter()
                .flatten()
            {
                s.entry.mtime = sde;
                out.push(s.entry);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
