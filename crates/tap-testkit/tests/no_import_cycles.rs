//! No source file imports another that imports it back, directly or around a
//! longer circle (the architecture issue's rule), checked on every crate's
//! `src/` on every test run.
//!
//! A file's edges are the modules its `crate::` and `super::` paths (in `use`
//! items and inline) resolve to: the longest path prefix that names a module
//! file. `mod x;` declarations are not imports; the crate root (`lib.rs`,
//! `main.rs`) only declares and re-exports, so edges to it are ignored; test
//! modules (`#[cfg(test)]` tails) are ignored.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                rs_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut m: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if m.last().is_some_and(|l| l == "mod") {
        m.pop();
    }
    if m == ["lib"] || m == ["main"] {
        m.clear();
    }
    m
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths starting at `text` (`crate::a::b`, `super::x::{y, z::w}`), each
/// as its segments; a brace group expands one level.
fn paths_at(text: &str) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    let mut rest = text;
    loop {
        let n = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if n == 0 {
            break;
        }
        prefix.push(rest[..n].to_owned());
        rest = &rest[n..];
        let Some(r) = rest.strip_prefix("::") else {
            break;
        };
        rest = r;
        if let Some(inner) = rest.strip_prefix('{') {
            return brace_items(inner)
                .into_iter()
                .map(|first| {
                    let mut p = prefix.clone();
                    p.push(first);
                    p
                })
                .collect();
        }
    }
    vec![prefix]
}

/// The first segment of each item of a `{...}` group (`inner` starts after `{`).
fn brace_items(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 1;
    let mut item = String::new();
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                out.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    out.push(item);
    out.into_iter()
        .map(|i| {
            i.trim()
                .chars()
                .take_while(|c| is_ident(*c))
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

fn edges_of(
    module: &Module,
    is_mod_rs: bool,
    text: &str,
    modules: &BTreeSet<Module>,
) -> BTreeSet<Module> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let starts = code
        .match_indices("crate::")
        .chain(code.match_indices("super::"));
    for (i, _) in starts {
        if code[..i].ends_with(|c: char| is_ident(c) || c == ':') {
            continue;
        }
        for path in paths_at(&code[i..]) {
            let resolved: Module = if path[0] == "crate" {
                path[1..].to_vec()
            } else {
                let mut cur: Module = if is_mod_rs {
                    module.clone()
                } else {
                    module[..module.len().saturating_sub(1)].to_vec()
                };
                let mut k = 0;
                while k < path.len() && path[k] == "super" {
                    if k > 0 {
                        cur.pop();
                    }
                    k += 1;
                }
                cur.extend_from_slice(&path[k..]);
                cur
            };
            if let Some(n) = (1..=resolved.len())
                .rev()
                .find(|n| modules.contains(&resolved[..*n].to_vec()))
            {
                let target = resolved[..n].to_vec();
                if &target != module {
                    out.insert(target);
                }
            }
        }
    }
    out
}

struct Tarjan<'a> {
    edges: &'a BTreeMap<Module, BTreeSet<Module>>,
    index: BTreeMap<&'a Module, usize>,
    low: BTreeMap<&'a Module, usize>,
    stack: Vec<&'a Module>,
    on: BTreeSet<&'a Module>,
    next: usize,
    out: Vec<Vec<Module>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, v: &'a Module) {
        self.index.insert(v, self.next);
        self.low.insert(v, self.next);
        self.next += 1;
        self.stack.push(v);
        self.on.insert(v);
        let edges = self.edges;
        for w in edges.get(v).into_iter().flatten() {
            let Some((w, _)) = edges.get_key_value(w) else {
                continue;
            };
            if !self.index.contains_key(w) {
                self.visit(w);
                let low = self.low[v].min(self.low[w]);
                self.low.insert(v, low);
            } else if self.on.contains(w) {
                let low = self.low[v].min(self.index[w]);
                self.low.insert(v, low);
            }
        }
        if self.low[v] == self.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                self.out.push(comp);
            }
        }
    }
}

/// Groups of more than one module that reach each other (Tarjan's SCCs).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut checked = 0;
    for c in std::fs::read_dir(&crates).unwrap() {
        let src = c.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rs_files(&src, &mut files);
        let by_module: BTreeMap<Module, PathBuf> = files
            .iter()
            .map(|f| (module_of(&src, f), f.clone()))
            .collect();
        let modules: BTreeSet<Module> = by_module.keys().cloned().collect();
        let mut edges = BTreeMap::new();
        for (m, f) in &by_module {
            if m.is_empty() {
                continue;
            }
            let text = std::fs::read_to_string(f).unwrap();
            let is_mod_rs = f.file_name().is_some_and(|n| n == "mod.rs");
            let mut e = edges_of(m, is_mod_rs, &text, &modules);
            e.remove(&Vec::new());
            edges.insert(m.clone(), e);
            checked += 1;
        }
        for comp in circles(&edges) {
            let names: Vec<String> = comp.iter().map(|m| m.join("::")).collect();
            found.push(format!("{}: {}", src.display(), names.join(" <-> ")));
        }
    }
    assert!(checked > 50, "checked only {checked} files");
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_a_circle_and_brace_groups() {
    let m = |s: &[&str]| -> Module { s.iter().map(|x| (*x).to_owned()).collect() };
    let modules: BTreeSet<Module> = [m(&["a"]), m(&["b"]), m(&["b", "c"])].into_iter().collect();
    let a = edges_of(
        &m(&["a"]),
        false,
        "use crate::b::{c::X, Y};\nfn f() { super::b::z(); }",
        &modules,
    );
    assert!(a.contains(&m(&["b", "c"])), "{a:?}");
    assert!(a.contains(&m(&["b"])), "{a:?}");
    let mut edges = BTreeMap::new();
    edges.insert(m(&["a"]), a);
    edges.insert(
        m(&["b"]),
        edges_of(&m(&["b"]), false, "use crate::a::Thing;", &modules),
    );
    edges.insert(m(&["b", "c"]), BTreeSet::new());
    assert_eq!(circles(&edges), vec![vec![m(&["b"]), m(&["a"])]]);
}
