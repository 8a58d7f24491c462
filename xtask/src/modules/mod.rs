//! `cargo xtask modules [--verbose]`, and the first step of `cargo xtask lint`: the import
//! graph of host/src's top-level modules, failing on any loop between two or more of them
//! (issue 13: a capability must be readable, testable and changeable alone, and a check
//! that runs on every lint keeps it so). Loops inside one top-level module are allowed.
//!
//! A file belongs to the top-level module of its first path component (`foo.rs` and
//! `foo/**` are `foo`), when the crate root (`lib.rs`, else `main.rs`) declares that
//! module; `lib.rs`, `main.rs` and the binary's own modules (`main.rs`'s `mod config_cli;`)
//! are the root, which is not a module: its references are not edges. One way around the
//! check is left open: an item the root re-exports (`pub use app::App;` in `lib.rs`, then
//! `crate::App`) hides its edge; host/src's `lib.rs` re-exports nothing.

mod cycles;
mod paths;
mod tokens;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The crate whose modules are checked, from the workspace root.
const CHECKED: &str = "host/src";

/// The first place (file and line) that makes an edge.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Site {
    file: String,
    line: usize,
}

/// The top-level modules of one crate and their references to each other.
#[derive(Debug)]
struct Graph {
    /// Where the files were read from, as the sites are printed (`host/src`).
    dir: String,
    /// Every top-level module, whether or not it uses another.
    modules: BTreeSet<String>,
    /// Module -> each module it uses -> the first place that does.
    edges: BTreeMap<String, BTreeMap<String, Site>>,
}

impl Graph {
    /// The graph of a crate's files: (path below `dir`, with `/`, source text).
    fn of_files(dir: &str, files: &[(String, String)]) -> Self {
        let root = ["lib.rs", "main.rs"]
            .iter()
            .find_map(|root| files.iter().find(|(path, _)| path == root));
        let modules = root.map_or_else(BTreeSet::new, |(_, text)| paths::declared_modules(text));
        let mut edges: BTreeMap<String, BTreeMap<String, Site>> = modules
            .iter()
            .map(|m| (m.clone(), BTreeMap::new()))
            .collect();
        let mut files: Vec<&(String, String)> = files.iter().collect();
        files.sort();
        for (file, text) in files {
            let path = module_path(file);
            let Some(module) = path.first().filter(|m| modules.contains(*m)) else {
                continue; // the root
            };
            for reference in paths::references(text, &path, &modules) {
                edges
                    .get_mut(module)
                    .expect("every module has an entry")
                    .entry(reference.module)
                    .or_insert_with(|| Site {
                        file: file.clone(),
                        line: reference.line,
                    });
            }
        }
        Self {
            dir: dir.to_string(),
            modules,
            edges,
        }
    }

    /// The graph of the `.rs` files under `dir` (relative to `root`).
    fn read(root: &Path, dir: &str) -> Result<Self> {
        let mut files = Vec::new();
        collect_sources(&root.join(dir), "", &mut files)?;
        if files.is_empty() {
            bail!("no Rust files under {dir}");
        }
        Ok(Self::of_files(dir, &files))
    }

    /// One line per module: `a: b, c` (the modules `a` uses), each edge's first site
    /// after it when `sites`.
    fn describe(&self, sites: bool) -> String {
        let mut text = String::new();
        for (module, uses) in &self.edges {
            let uses: Vec<String> = uses
                .iter()
                .map(|(to, site)| {
                    if sites {
                        format!("{to} ({})", self.site(site))
                    } else {
                        to.clone()
                    }
                })
                .collect();
            let _ = writeln!(text, "{module}: {}", uses.join(", "));
        }
        text
    }

    /// Every loop between top-level modules, as `a -> b -> a` and the first site of each
    /// edge; `None` when there is none.
    fn describe_loops(&self) -> Option<String> {
        let adjacency: cycles::Adjacency = self
            .edges
            .iter()
            .map(|(from, uses)| (from.as_str(), uses.keys().map(String::as_str).collect()))
            .collect();
        let tangles = cycles::tangles(&adjacency);
        if tangles.is_empty() {
            return None;
        }
        let mut text = String::new();
        for tangle in &tangles {
            let loops = cycles::loops(&adjacency, tangle);
            let _ = writeln!(
                text,
                "{} modules import each other ({}): {} loop(s), one through each of their edges:",
                tangle.len(),
                tangle.join(", "),
                loops.len()
            );
            for cycle in loops {
                let closed: Vec<&str> = cycle.iter().chain(cycle.first()).copied().collect();
                let _ = writeln!(text, "  {}", closed.join(" -> "));
                for edge in closed.windows(2) {
                    let site = &self.edges[edge[0]][edge[1]];
                    let _ = writeln!(
                        text,
                        "      {} -> {}: {}",
                        edge[0],
                        edge[1],
                        self.site(site)
                    );
                }
            }
        }
        Some(text)
    }

    fn site(&self, site: &Site) -> String {
        format!("{}/{}:{}", self.dir, site.file, site.line)
    }
}

/// The module path of a file below the crate's source dir: `a.rs` and `a/mod.rs` are
/// `["a"]`, `a/b.rs` is `["a", "b"]`, `lib.rs` is `["lib"]` (not a module).
fn module_path(file: &str) -> Vec<String> {
    let mut path: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if path.len() > 1 && path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    path
}

fn collect_sources(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{prefix}{name}");
        if entry.file_type()?.is_dir() {
            collect_sources(&entry.path(), &format!("{relative}/"), out)?;
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(entry.path())
                .with_context(|| format!("read {}", entry.path().display()))?;
            out.push((relative, text));
        }
    }
    Ok(())
}

/// `cargo xtask modules [--verbose]`: prints the graph (with each edge's first site when
/// verbose) and fails on a loop.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let verbose = match args {
        [] => false,
        [flag] if flag == "--verbose" || flag == "-v" => true,
        _ => bail!("usage: cargo xtask modules [--verbose]"),
    };
    let graph = Graph::read(root, CHECKED)?;
    println!("{CHECKED}: each top-level module and the ones it uses\n");
    print!("{}", graph.describe(verbose));
    verdict(&graph)
}

/// The lint step: one line when the graph has no loop, the graph and its loops otherwise.
pub fn lint(root: &Path) -> Result<()> {
    let graph = Graph::read(root, CHECKED)?;
    if graph.describe_loops().is_some() {
        println!("{CHECKED}: each top-level module and the ones it uses\n");
        print!("{}", graph.describe(false));
    }
    verdict(&graph)
}

fn verdict(graph: &Graph) -> Result<()> {
    match graph.describe_loops() {
        None => {
            println!(
                "{CHECKED}: {} top-level modules, no import loop between them",
                graph.modules.len()
            );
            Ok(())
        }
        Some(loops) => {
            println!("\n{loops}");
            bail!(
                "{CHECKED} has import loops between top-level modules (listed above): move what a lower module needs from a higher one down into it, or into a module of its own"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> Graph {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(path, text)| (path.to_string(), text.to_string()))
            .collect();
        Graph::of_files("src", &files)
    }

    /// Asserts that the graph of `files` has no loop and reads `expected` (`a: b` lines).
    fn assert_acyclic(files: &[(&str, &str)], expected: &str) {
        let g = graph(files);
        assert_eq!(g.describe_loops(), None);
        assert_eq!(g.describe(false), expected);
    }

    #[test]
    fn a_loop_across_modules_fails_with_each_edge_located() {
        let g = graph(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;"),
            ("a.rs", "//! Uses b.\nuse crate::b::B;"),
            ("b.rs", "pub fn f() {\n    crate::c::g();\n}"),
            ("c/mod.rs", "mod inner;\npub fn g() {}"),
            ("c/inner.rs", "use super::super::a;"),
        ]);
        let loops = g.describe_loops().expect("a loop");
        assert_eq!(
            loops,
            "3 modules import each other (a, b, c): 1 loop(s), one through each of their edges:\n\
             \x20 a -> b -> c -> a\n\
             \x20     a -> b: src/a.rs:2\n\
             \x20     b -> c: src/b.rs:2\n\
             \x20     c -> a: src/c/inner.rs:1\n"
        );
        assert_eq!(g.describe(false), "a: b\nb: c\nc: a\n");
        assert_eq!(
            g.describe(true),
            "a: b (src/a.rs:2)\nb: c (src/b.rs:2)\nc: a (src/c/inner.rs:1)\n"
        );
    }

    #[test]
    fn an_acyclic_tree_passes() {
        assert_acyclic(
            &[
                ("lib.rs", "mod a;\nmod b;\nmod c;"),
                ("a.rs", "use crate::{b, c::C};"),
                ("b/mod.rs", "mod x;\nuse crate::c;"),
                ("b/x.rs", "use super::super::c::D;"),
                (
                    "c.rs",
                    "/// Not a use: crate::a\nconst S: &str = \"crate::b\";",
                ),
            ],
            "a: b, c\nb: c\nc: \n",
        );
    }

    #[test]
    fn a_loop_inside_one_module_is_allowed() {
        assert_acyclic(
            &[
                ("lib.rs", "mod a;\nmod b;"),
                ("a/mod.rs", "mod x;\nmod y;\nuse crate::a::x::X;"),
                ("a/x.rs", "use super::y::Y;"),
                ("a/y.rs", "use crate::a::x::X;\nuse crate::b;"),
                ("b.rs", ""),
            ],
            "a: b\nb: \n",
        );
    }

    #[test]
    fn the_binary_and_its_own_modules_are_the_root() {
        // `main.rs` and its `mod cli;` use everything: no edges, and `cli` is no module.
        assert_acyclic(
            &[
                ("lib.rs", "pub mod a;\npub mod b;"),
                ("main.rs", "mod cli;\nuse micro::a;"),
                ("cli.rs", "use micro::b;\nuse crate::a;"),
                ("a.rs", "use crate::b;"),
                ("b.rs", ""),
            ],
            "a: b\nb: \n",
        );
    }

    #[test]
    fn reads_module_paths() {
        assert_eq!(module_path("a.rs"), ["a"]);
        assert_eq!(module_path("a/mod.rs"), ["a"]);
        assert_eq!(module_path("a/b/mod.rs"), ["a", "b"]);
        assert_eq!(module_path("a/b.rs"), ["a", "b"]);
    }
}
