//! The architecture, checked: the library's modules import each other
//! without cycles, and the layers of docs/architecture.md point one way.
//!
//! The graph is read from the source with `syn`, the way `cargo modules
//! dependencies --acyclic` reads it, without its install: a node is a
//! module (a file, or an inline module that is not `#[cfg(test)]`); an edge
//! A → B is a path in A's code (a `use`, an expression, a type) that names
//! an item of B. Paths are resolved through `use` aliases and through
//! re-exports (`pub use child::Item` in a parent makes `parent::Item` name
//! the child's item), and a re-export by itself is not an edge: it is how
//! a folder presents its children, not a use. Test modules are left out;
//! tests may import anything.
//!
//! What fails: any cycle between modules (listed with its path), and any
//! import that a layer rule forbids (listed with the file that makes it).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
};

use syn::visit::Visit;

/// A module's path below the crate root, e.g. `["storage", "walk"]`.
type ModPath = Vec<String>;

struct Module {
    file: PathBuf,
    /// Local names brought in by `use`, to the full path they stand for.
    aliases: HashMap<String, ModPath>,
    /// Paths named by this module's (private) `use` items.
    use_paths: Vec<ModPath>,
    /// Paths this module's code names (before resolution).
    uses: Vec<ModPath>,
    /// Glob imports (`use a::b::*`): the module `a::b` is used.
    globs: Vec<ModPath>,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn is_test_cfg(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .map(|l| l.tokens.to_string().contains("test"))
                .unwrap_or(false)
    })
}

/// Expands a `use` tree into (local name, full path, is_glob) triples.
fn flatten_use(tree: &syn::UseTree, prefix: &[String], out: &mut Vec<(String, ModPath, bool)>) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut next = prefix.to_vec();
            next.push(p.ident.to_string());
            flatten_use(&p.tree, &next, out);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut full = prefix.to_vec();
            if name == "self" {
                let local = prefix.last().cloned().unwrap_or_default();
                out.push((local, full, false));
            } else {
                full.push(name.clone());
                out.push((name, full, false));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix.to_vec();
            if r.ident != "self" {
                full.push(r.ident.to_string());
            }
            out.push((r.rename.to_string(), full, false));
        }
        syn::UseTree::Glob(_) => out.push((String::new(), prefix.to_vec(), true)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

/// Makes a path absolute from the crate root, if it is one of ours
/// (`crate::`, `super::`, `self::` or a local alias); None for external
/// crates and std.
fn absolute(
    path: &[String],
    here: &ModPath,
    aliases: &HashMap<String, ModPath>,
    is_module: &dyn Fn(&[String]) -> bool,
) -> Option<ModPath> {
    let first = path.first()?;
    let rest = &path[1..];
    let mut base = match first.as_str() {
        "crate" => Vec::new(),
        "self" => here.clone(),
        "super" => {
            let mut base = here.clone();
            base.pop();
            let mut rest = rest;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            return Some(base);
        }
        name => {
            // A child module named directly (uniform paths: `use child::X`).
            let mut child = here.clone();
            child.push(name.to_string());
            if is_module(&child) {
                child.extend(rest.iter().cloned());
                return Some(child);
            }
            let target = aliases.get(name)?;
            if target.first() == path.first() {
                return None; // an alias of itself: an external crate
            }
            let mut base = absolute(target, here, aliases, is_module)?;
            base.extend(rest.iter().cloned());
            return Some(base);
        }
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

struct Collector<'a> {
    paths: &'a mut Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.paths
            .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }
    fn visit_item_use(&mut self, _: &'ast syn::ItemUse) {}
    // `pub(super)`, `pub(in crate::x)`: who may see, not a use.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Paths inside common macro calls (format!, matches!, …) are
        // tokens; parse what parses as expressions.
        if let Ok(args) = m.parse_body_with(
            syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated,
        ) {
            for arg in &args {
                self.visit_expr(arg);
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

/// Reads the module in `items` (at `here`, from `file`) and its children.
fn read_items(
    items: &[syn::Item],
    here: &ModPath,
    file: &Path,
    dir: &Path,
    modules: &mut BTreeMap<ModPath, Module>,
) {
    let mut module = Module {
        file: file.to_path_buf(),
        aliases: HashMap::new(),
        use_paths: Vec::new(),
        uses: Vec::new(),
        globs: Vec::new(),
    };
    let mut raw_paths = Vec::new();
    let mut children = Vec::new();
    for item in items {
        match item {
            syn::Item::Use(u) if !is_test_cfg(&u.attrs) => {
                let mut flat = Vec::new();
                flatten_use(&u.tree, &[], &mut flat);
                let public = !matches!(u.vis, syn::Visibility::Inherited);
                for (local, full, glob) in flat {
                    if glob {
                        module.globs.push(full);
                    } else if public {
                        // A re-export: a name, not a use of its own.
                        module.aliases.insert(local, full);
                    } else {
                        module.aliases.insert(local, full.clone());
                        module.use_paths.push(full);
                    }
                }
            }
            syn::Item::Mod(m) if !is_test_cfg(&m.attrs) => children.push(m),
            syn::Item::Mod(_) => {}
            item => {
                if let syn::Item::Fn(f) = item
                    && is_test_cfg(&f.attrs)
                {
                    continue;
                }
                let mut collector = Collector {
                    paths: &mut raw_paths,
                };
                collector.visit_item(item);
            }
        }
    }
    module.uses.extend(raw_paths);
    modules.insert(here.clone(), module);
    for m in children {
        let mut child = here.clone();
        child.push(m.ident.to_string());
        match &m.content {
            Some((_, items)) => {
                read_items(items, &child, file, &dir.join(m.ident.to_string()), modules)
            }
            None => {
                let name = m.ident.to_string();
                let (path, child_dir) = if dir.join(format!("{name}.rs")).exists() {
                    (dir.join(format!("{name}.rs")), dir.join(&name))
                } else {
                    (dir.join(&name).join("mod.rs"), dir.join(&name))
                };
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let parsed =
                    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                read_items(&parsed.items, &child, &path, &child_dir, modules);
            }
        }
    }
}

/// The library's module graph: module → modules it uses.
fn graph() -> (
    BTreeMap<ModPath, Module>,
    BTreeMap<ModPath, BTreeSet<ModPath>>,
) {
    let lib = src().join("lib.rs");
    let parsed = syn::parse_file(&std::fs::read_to_string(&lib).unwrap()).unwrap();
    let mut modules = BTreeMap::new();
    read_items(&parsed.items, &Vec::new(), &lib, &src(), &mut modules);

    let names: BTreeSet<ModPath> = modules.keys().cloned().collect();
    let is_module = |p: &[String]| names.contains(p);
    // The deepest module a full path names, following re-exports.
    let resolve = |path: &ModPath| -> Option<ModPath> {
        let mut path = path.clone();
        for _ in 0..16 {
            let mut depth = path.len();
            while depth > 0 && !modules.contains_key(&path[..depth]) {
                depth -= 1;
            }
            let module = &modules[&path[..depth]];
            let Some(next) = path.get(depth) else {
                return Some(path);
            };
            // A name a module brought in with `use` (public or not: a
            // child may name its parent's imports) stands for its target.
            match module.aliases.get(next) {
                Some(target) => {
                    let here = path[..depth].to_vec();
                    let Some(mut target) = absolute(target, &here, &module.aliases, &is_module)
                    else {
                        return Some(here);
                    };
                    target.extend(path[depth + 1..].iter().cloned());
                    path = target;
                }
                None => return Some(path[..depth].to_vec()),
            }
        }
        None
    };
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (here, module) in &modules {
        let targets = edges.entry(here.clone()).or_default();
        let named = module
            .use_paths
            .iter()
            .map(|p| (p, true))
            .chain(module.uses.iter().chain(&module.globs).map(|p| (p, false)));
        for (raw, from_use) in named {
            let Some(full) = absolute(raw, here, &module.aliases, &is_module) else {
                continue;
            };
            // `use crate::db;` only makes a name; what the code then names
            // in it is the use.
            if from_use && modules.contains_key(&full) {
                continue;
            }
            if let Some(target) = resolve(&full)
                && &target != here
                && !target.is_empty()
            {
                if std::env::var("ARCH_DEBUG")
                    .is_ok_and(|d| d == format!("{} -> {}", name(here), name(&target)))
                {
                    eprintln!("{raw:?} => {full:?}");
                }
                targets.insert(target);
            }
        }
    }
    (modules, edges)
}

fn name(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn the_modules_of_the_library_import_each_other_without_cycles() {
    let (modules, edges) = graph();
    assert!(
        modules.len() > 50,
        "the graph was not read: {}",
        modules.len()
    );
    // Tarjan's strongly connected components.
    let nodes: Vec<&ModPath> = edges.keys().collect();
    let index_of: HashMap<&ModPath, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut index = vec![usize::MAX; nodes.len()];
    let mut low = vec![0; nodes.len()];
    let mut on_stack = vec![false; nodes.len()];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut cycles = Vec::new();
    // Iterative DFS (the graph is small, but keep the habit).
    for start in 0..nodes.len() {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, Vec<usize>)> = Vec::new();
        let succ = |v: usize| -> Vec<usize> {
            edges[nodes[v]]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        };
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        work.push((start, succ(start)));
        while let Some((v, pending)) = work.last_mut() {
            let v = *v;
            if let Some(w) = pending.pop() {
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, succ(w)));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some((parent, _)) = work.last() {
                    low[*parent] = low[*parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    loop {
                        let w = stack.pop().unwrap();
                        on_stack[w] = false;
                        component.push(name(nodes[w]));
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort();
                        cycles.push(component);
                    }
                }
            }
        }
    }
    let explain = |component: &[String]| -> String {
        let members: BTreeSet<&String> = component.iter().collect();
        let mut lines = Vec::new();
        for m in component {
            let path: ModPath = if m == "crate" {
                vec![]
            } else {
                m.split("::").map(String::from).collect()
            };
            for t in &edges[&path] {
                if members.contains(&name(t)) {
                    lines.push(format!(
                        "    {m} -> {} ({})",
                        name(t),
                        modules[&path].file.display()
                    ));
                }
            }
        }
        lines.join("\n")
    };
    assert!(
        cycles.is_empty(),
        "import cycles between modules:\n{}",
        cycles
            .iter()
            .map(|c| format!("  {}\n{}", c.join(", "), explain(c)))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The layers of docs/architecture.md: what each top-level module must not
/// import (directly; with no cycles, not indirectly either through a lower one).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "api", "auth", "config", "db", "engine", "error", "infra", "jobs", "layers", "pb",
            "reports", "schema", "server", "state", "storage",
        ],
    ),
    (
        "storage",
        &[
            "api", "auth", "db", "engine", "error", "jobs", "layers", "pb", "server", "state",
        ],
    ),
    (
        "engine",
        &["api", "db", "jobs", "layers", "pb", "server", "state"],
    ),
    ("jobs", &["api", "layers", "server"]),
    (
        "db",
        &["api", "engine", "jobs", "layers", "server", "state"],
    ),
    ("reports", &["api", "jobs", "layers", "server"]),
    ("auth", &["api", "engine", "jobs", "layers", "server"]),
    ("infra", &["api", "engine", "jobs", "layers", "server"]),
    (
        "error",
        &[
            "api", "auth", "db", "engine", "infra", "jobs", "layers", "server", "state",
        ],
    ),
    (
        "config",
        &[
            "api", "db", "engine", "infra", "jobs", "layers", "server", "state",
        ],
    ),
];

#[test]
fn lower_layers_never_import_higher_ones() {
    let (modules, edges) = graph();
    let mut violations = Vec::new();
    for (from, forbidden) in FORBIDDEN {
        for (here, targets) in &edges {
            if here.first().map(String::as_str) != Some(*from) {
                continue;
            }
            for t in targets {
                if let Some(top) = t.first()
                    && forbidden.contains(&top.as_str())
                {
                    violations.push(format!(
                        "{} imports {} ({})",
                        name(here),
                        name(t),
                        modules[here].file.display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer rules broken:\n  {}",
        violations.join("\n  ")
    );
}
