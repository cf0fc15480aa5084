//! Dependency resolution over a `Packages` universe, for one architecture. Pure.
//!
//! The rule, chosen to be predictable rather than clever:
//! 1. Roots first, in this order: the recipe's `packages` as written, then (with
//!    `essential: true`) every package marked `Essential: yes` or `Priority: required`, by
//!    name. All roots are chosen before any dependency is looked at, so a dependency
//!    `a | b` is already satisfied when the recipe asks for `b`.
//! 2. Then packages are visited breadth-first in the order they were chosen; for each, its
//!    `Pre-Depends` then `Depends` groups, in field order. A group already satisfied by a
//!    chosen package (by name, or by a `Provides`, versioned when the relation has a version)
//!    is skipped. Otherwise the first alternative that can be satisfied is taken:
//!    - a real package of that name: its highest version matching the relation;
//!    - else a package providing the name (with a matching version for a versioned
//!      relation): the one with the most important `Priority` (required, important,
//!      standard, optional, extra), then the lowest name, then the highest version.
//! 3. One version per package name. A choice is never revisited: a later relation that the
//!    chosen version does not satisfy falls through to its other alternatives, or fails.
//!
//! Architectures: candidates are packages of the target architecture or `all`. `pkg:any`
//! accepts only `Multi-Arch: allowed` packages (policy 7.1); `pkg:native` is `pkg`;
//! `pkg:OTHER` cannot be satisfied in a single-architecture resolution. `Multi-Arch: same`
//! and `foreign` change nothing when only one architecture is installed; they are recorded
//! in the lock. Relations with `[arch]` restrictions that exclude the target are dropped.
//!
//! `exclude`: an excluded package is never chosen, and any relation naming it counts as
//! satisfied (the image deliberately goes without it). Cycles (`a` depends on `b`, `b` on
//! `a`) need nothing special: a chosen package is never visited twice. `Conflicts`,
//! `Breaks`, `Recommends` and `Suggests` are not considered.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use super::index::{MultiArch, PackageEntry};
use super::relation::{
    display_alternatives, parse_relations, Alternatives, ArchQual, Relation, RelationError,
};

/// What to resolve.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    /// Debian architecture, e.g. `amd64`.
    pub arch: String,
    /// Root relations, from the recipe's `packages`.
    pub packages: Vec<Alternatives>,
    pub exclude: BTreeSet<String>,
    pub essential: bool,
}

/// Parses one recipe `packages` entry: `name`, `name (>= 1.2)`, `name=1.2-1` (apt's
/// spelling of `(= 1.2-1)`), or alternatives `a | b`.
pub fn parse_request(text: &str) -> Result<Alternatives, RelationError> {
    let t = text.trim();
    let rewritten;
    let t = match t.split_once('=') {
        Some((name, ver)) if !t.contains('(') && !t.contains('|') => {
            rewritten = format!("{} (= {})", name.trim(), ver.trim());
            rewritten.as_str()
        }
        _ => t,
    };
    let mut groups = parse_relations(t)?;
    match groups.len() {
        1 => Ok(groups.remove(0)),
        _ => Err(RelationError::Syntax {
            text: text.to_string(),
            reason: "one entry names one package (or `a | b` alternatives); use one list item per package".into(),
        }),
    }
}

/// Why a package was chosen: the chain back to a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Requested(String),
    Essential,
    Dependency { parent: String, relation: String },
}

#[derive(Debug)]
pub struct Resolution<'a> {
    /// Chosen packages, sorted by name.
    pub packages: Vec<&'a PackageEntry>,
    pub reasons: BTreeMap<String, Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("cannot satisfy `{relation}`\n  needed by: {}\n{}\nhint: relax the version, add the component that has it, name one alternative in `packages`, or `exclude` it if the image can go without", chain.join(" <- "), why.iter().map(|w| format!("  {w}")).collect::<Vec<_>>().join("\n"))]
    Unsatisfiable {
        relation: String,
        /// From the package that needs it back to the recipe.
        chain: Vec<String>,
        /// One line per alternative.
        why: Vec<String>,
    },
    #[error("`{name}` is both in `packages` and in `exclude`\nhint: remove it from one of them")]
    ExcludedRoot { name: String },
}

const PRIORITIES: [&str; 5] = ["required", "important", "standard", "optional", "extra"];

fn priority_rank(p: &str) -> usize {
    PRIORITIES
        .iter()
        .position(|x| *x == p)
        .unwrap_or(PRIORITIES.len())
}

struct Universe<'a> {
    all: &'a [PackageEntry],
    /// Name → indices, best (highest version) first.
    by_name: BTreeMap<&'a str, Vec<usize>>,
    /// Virtual name → (provider index, provided version index in its `provides`).
    providers: BTreeMap<&'a str, Vec<(usize, usize)>>,
    arch: &'a str,
}

impl<'a> Universe<'a> {
    fn new(all: &'a [PackageEntry], arch: &'a str) -> Universe<'a> {
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut providers: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
        for (i, p) in all.iter().enumerate() {
            if p.arch != arch && p.arch != "all" {
                continue;
            }
            by_name.entry(&p.name).or_default().push(i);
            for (j, pr) in p.provides.iter().enumerate() {
                providers.entry(&pr.name).or_default().push((i, j));
            }
        }
        for v in by_name.values_mut() {
            // Stable: equal versions keep index order, so the first listed wins.
            v.sort_by(|a, b| all[*b].version.cmp(&all[*a].version));
        }
        for v in providers.values_mut() {
            v.sort_by(|a, b| {
                let (pa, pb) = (&all[a.0], &all[b.0]);
                priority_rank(&pa.priority)
                    .cmp(&priority_rank(&pb.priority))
                    .then_with(|| pa.name.cmp(&pb.name))
                    .then_with(|| pb.version.cmp(&pa.version))
            });
        }
        Universe {
            all,
            by_name,
            providers,
            arch,
        }
    }
}

struct State<'a> {
    u: Universe<'a>,
    exclude: &'a BTreeSet<String>,
    chosen: BTreeMap<&'a str, usize>,
    order: Vec<usize>,
    reasons: BTreeMap<String, Reason>,
}

fn label(p: &PackageEntry) -> String {
    format!("{} {} ({})", p.name, p.version, p.arch)
}

impl<'a> State<'a> {
    /// Can `p` stand for `rel` by name (architecture qualifier and version)?
    fn real_ok(&self, rel: &Relation, p: &PackageEntry) -> bool {
        let arch_ok = match &rel.arch_qual {
            None | Some(ArchQual::Native) => true,
            Some(ArchQual::Any) => p.multi_arch == MultiArch::Allowed,
            Some(ArchQual::Named(a)) => a == self.u.arch || p.arch == "all",
        };
        arch_ok && rel.version_ok(&p.version)
    }

    fn provide_ok(&self, rel: &Relation, i: usize, j: usize) -> bool {
        if matches!(&rel.arch_qual, Some(ArchQual::Named(a)) if a != self.u.arch) {
            return false;
        }
        match (&rel.version, &self.u.all[i].provides[j].version) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((op, want)), Some(have)) => op.matches(have, want),
        }
    }

    fn satisfied(&self, rel: &Relation) -> bool {
        if self.exclude.contains(&rel.name) {
            return true;
        }
        if let Some(&i) = self.chosen.get(rel.name.as_str()) {
            if self.real_ok(rel, &self.u.all[i]) {
                return true;
            }
        }
        self.u.providers.get(rel.name.as_str()).is_some_and(|ps| {
            ps.iter().any(|&(i, j)| {
                self.chosen.get(self.u.all[i].name.as_str()) == Some(&i)
                    && self.provide_ok(rel, i, j)
            })
        })
    }

    /// The package to choose for `rel`, or why there is none.
    fn candidate(&self, rel: &Relation) -> Result<usize, String> {
        let mut why = Vec::new();
        if let Some(idx) = self.u.by_name.get(rel.name.as_str()) {
            if let Some(&i) = self.chosen.get(rel.name.as_str()) {
                why.push(format!(
                    "{}: {} is already chosen and does not match",
                    rel,
                    label(&self.u.all[i])
                ));
            } else if let Some(&i) = idx.iter().find(|&&i| self.real_ok(rel, &self.u.all[i])) {
                return Ok(i);
            } else {
                let vs: Vec<String> = idx
                    .iter()
                    .map(|&i| self.u.all[i].version.to_string())
                    .collect();
                let extra = if matches!(rel.arch_qual, Some(ArchQual::Any)) {
                    " (`:any` needs Multi-Arch: allowed)"
                } else {
                    ""
                };
                why.push(format!(
                    "{rel}: available {}, none matches{extra}",
                    vs.join(", ")
                ));
            }
        }
        if let Some(ps) = self.u.providers.get(rel.name.as_str()) {
            let mut any = false;
            for &(i, j) in ps {
                let p = &self.u.all[i];
                if self.exclude.contains(&p.name) || !self.provide_ok(rel, i, j) {
                    continue;
                }
                any = true;
                match self.chosen.get(p.name.as_str()) {
                    None => return Ok(i),
                    Some(&c) if c == i => return Ok(i),
                    Some(_) => {}
                }
            }
            why.push(if any {
                format!("{rel}: its providers are already chosen in other versions")
            } else {
                format!("{rel}: no provider matches")
            });
        }
        if why.is_empty() {
            if let Some(ArchQual::Named(a)) = &rel.arch_qual {
                why.push(format!("{rel}: only {} is resolved, not {a}", self.u.arch));
            } else {
                why.push(format!(
                    "{rel}: no package or provider of that name in the index"
                ));
            }
        }
        Err(why.join("; "))
    }

    fn choose(&mut self, i: usize, reason: Reason) {
        let p = &self.u.all[i];
        self.chosen.insert(&p.name, i);
        self.order.push(i);
        self.reasons.insert(p.name.clone(), reason);
    }

    fn chain(&self, from: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = from.to_string();
        let mut seen = BTreeSet::new();
        while seen.insert(cur.clone()) {
            let label = match self.chosen.get(cur.as_str()) {
                Some(&i) => label(&self.u.all[i]),
                None => cur.clone(),
            };
            match self.reasons.get(&cur) {
                Some(Reason::Dependency { parent, .. }) => {
                    out.push(label);
                    cur = parent.clone();
                }
                Some(Reason::Requested(r)) => {
                    out.push(label);
                    out.push(format!("the recipe's packages ({r})"));
                    break;
                }
                Some(Reason::Essential) => {
                    out.push(label);
                    out.push("the Essential set (essential: true)".into());
                    break;
                }
                None => {
                    out.push(label);
                    break;
                }
            }
        }
        out
    }
}

/// Resolves `req` over `universe` (every package of every index used).
pub fn resolve<'a>(
    universe: &'a [PackageEntry],
    req: &'a ResolveRequest,
) -> Result<Resolution<'a>, ResolveError> {
    let mut st = State {
        u: Universe::new(universe, &req.arch),
        exclude: &req.exclude,
        chosen: BTreeMap::new(),
        order: Vec::new(),
        reasons: BTreeMap::new(),
    };
    for group in &req.packages {
        let text = display_alternatives(group);
        if let [r] = group.as_slice() {
            if req.exclude.contains(&r.name) {
                return Err(ResolveError::ExcludedRoot {
                    name: r.name.clone(),
                });
            }
        }
        if group.iter().any(|r| st.satisfied(r)) {
            continue;
        }
        let mut why = Vec::new();
        let mut done = false;
        for r in group {
            match st.candidate(r) {
                Ok(i) => {
                    st.choose(i, Reason::Requested(text.clone()));
                    done = true;
                    break;
                }
                Err(w) => why.push(w),
            }
        }
        if !done {
            return Err(ResolveError::Unsatisfiable {
                relation: text.clone(),
                chain: vec![format!("the recipe's packages ({text})")],
                why,
            });
        }
    }
    if req.essential {
        // Best version first; the set is every name with an essential or required version.
        let essential: Vec<usize> =
            st.u.by_name
                .values()
                .filter_map(|idx| {
                    idx.iter()
                        .copied()
                        .find(|&i| universe[i].essential || universe[i].priority == "required")
                })
                .collect();
        for i in essential {
            let name = universe[i].name.as_str();
            if req.exclude.contains(name) || st.chosen.contains_key(name) {
                continue;
            }
            st.choose(i, Reason::Essential);
        }
    }
    let mut queue: VecDeque<usize> = st.order.iter().copied().collect();
    while let Some(i) = queue.pop_front() {
        let p = &universe[i];
        for group in p.pre_depends.iter().chain(&p.depends) {
            let alts: Vec<&Relation> = group.iter().filter(|r| r.applies_to(&req.arch)).collect();
            if alts.is_empty() || alts.iter().any(|r| st.satisfied(r)) {
                continue;
            }
            let text = display_alternatives(group);
            let mut why = Vec::new();
            let mut picked = None;
            for r in &alts {
                match st.candidate(r) {
                    Ok(c) => {
                        picked = Some(c);
                        break;
                    }
                    Err(w) => why.push(w),
                }
            }
            let Some(c) = picked else {
                return Err(ResolveError::Unsatisfiable {
                    relation: text,
                    chain: st.chain(&p.name),
                    why,
                });
            };
            st.choose(
                c,
                Reason::Dependency {
                    parent: p.name.clone(),
                    relation: text,
                },
            );
            queue.push_back(c);
        }
    }
    let mut packages: Vec<&PackageEntry> = st.order.iter().map(|&i| &universe[i]).collect();
    packages.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arch.cmp(&b.arch)));
    Ok(Resolution {
        packages,
        reasons: st.reasons,
    })
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Requested(r) => write!(f, "requested ({r})"),
            Reason::Essential => f.write_str("essential"),
            Reason::Dependency { parent, relation } => write!(f, "{parent} needs {relation}"),
        }
    }
}

#[cfg(test)]
mod tests;
