//! The references one file makes to the crate's top-level modules: every path that starts
//! at the crate root, in `use` trees (`use crate::a::b`, `use crate::{a, b::{c, d}}`) and
//! inline in code (`crate::telemetry::metrics::METRICS.reload(…)`), including `super::`
//! chains that climb out of the file's top-level module to the root and back down.

use std::collections::BTreeSet;

use super::tokens::{Spanned, Token, tokenize};

/// A reference to a top-level module, and the line that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub module: String,
    pub line: usize,
}

/// The modules a crate root declares at its top level (`mod x;`, `pub mod x { … }`).
pub fn declared_modules(root: &str) -> BTreeSet<String> {
    let tokens = tokenize(root);
    let mut depth = 0usize;
    let mut modules = BTreeSet::new();
    for (i, spanned) in tokens.iter().enumerate() {
        match &spanned.token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => depth = depth.saturating_sub(1),
            Token::Ident(word) if word == "mod" && depth == 0 => {
                if let (Some(Token::Ident(name)), Some(Token::Punct(';' | '{'))) =
                    (token(&tokens, i + 1), token(&tokens, i + 2))
                {
                    modules.insert(name.clone());
                }
            }
            _ => {}
        }
    }
    modules
}

/// Every reference `source` makes to one of `modules` other than its own. `path` is the
/// file's module path below the root: `["a"]` for `a.rs` and `a/mod.rs`, `["a", "b"]` for
/// `a/b.rs`; inline `mod x { … }` blocks extend it, so `super::` resolves as rustc does.
///
/// Code under `#[cfg(test)]` counts like any other: a test module that imports a module
/// above its own still ties the two in a loop (`cargo test` builds both), and a test that
/// needs the upper layer belongs in `host/tests/` or in that upper module.
pub fn references(source: &str, path: &[String], modules: &BTreeSet<String>) -> Vec<Reference> {
    let tokens = tokenize(source);
    let own = path.first();
    let mut found = Vec::new();
    // Inline modules open here, with the brace depth of their body.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut at = 0;
    while at < tokens.len() {
        let here: Vec<&str> = path
            .iter()
            .map(String::as_str)
            .chain(inline.iter().map(|(name, _)| name.as_str()))
            .collect();
        let mut resolved = |segments: &[Segment]| {
            if let Some(reference) = resolve(segments, &here, modules)
                && Some(&reference.module) != own
            {
                found.push(reference);
            }
        };
        match (&tokens[at].token, token(&tokens, at + 1)) {
            // `use<'a>` is a precise-capturing bound, not an import.
            (Token::Ident(word), next) if word == "use" && next != Some(&Token::Punct('<')) => {
                let mut trees = Vec::new();
                if let Some(end) = use_tree(&tokens, at + 1, Vec::new(), &mut trees)
                    && token(&tokens, end) == Some(&Token::Punct(';'))
                {
                    trees.iter().for_each(|segments| resolved(segments));
                    at = end + 1;
                    continue;
                }
            }
            (Token::Ident(word), Some(Token::Ident(name)))
                if word == "mod" && token(&tokens, at + 2) == Some(&Token::Punct('{')) =>
            {
                depth += 1;
                inline.push((name.clone(), depth));
                at += 3;
                continue;
            }
            (Token::Ident(word), _) if matches!(word.as_str(), "crate" | "super" | "self") => {
                let (segments, end) = inline_path(&tokens, at);
                resolved(&segments);
                at = end;
                continue;
            }
            (Token::Punct('{'), _) => depth += 1,
            (Token::Punct('}'), _) => {
                if inline.last().is_some_and(|(_, open)| *open == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        at += 1;
    }
    found
}

/// One segment of a path, with its line; a leading `::` (an extern crate) is the segment `::`.
#[derive(Debug, Clone)]
struct Segment {
    name: String,
    line: usize,
}

fn token(tokens: &[Spanned], at: usize) -> Option<&Token> {
    tokens.get(at).map(|t| &t.token)
}

/// The path starting at `at` (`a::b::c`, up to what is not an identifier after a `::`:
/// a turbofish, a use tree's glob or group), and where it ends.
fn inline_path(tokens: &[Spanned], mut at: usize) -> (Vec<Segment>, usize) {
    let mut segments = Vec::new();
    while let Some(Token::Ident(name)) = token(tokens, at) {
        segments.push(Segment {
            name: name.clone(),
            line: tokens[at].line,
        });
        at += 1;
        if token(tokens, at) != Some(&Token::PathSep) {
            break;
        }
        at += 1;
    }
    (segments, at)
}

/// Reads the use tree at `at` below `path`, pushing each full path it imports (a glob
/// or a `{…}` group ends one path per member) to `out`. Returns where the tree ends, or
/// `None` when this is no use tree (a `use` in a macro pattern, say).
fn use_tree(
    tokens: &[Spanned],
    mut at: usize,
    mut path: Vec<Segment>,
    out: &mut Vec<Vec<Segment>>,
) -> Option<usize> {
    if token(tokens, at) == Some(&Token::PathSep) {
        path.push(Segment {
            name: "::".into(),
            line: tokens[at].line,
        });
        at += 1;
    }
    let (segments, end) = inline_path(tokens, at);
    // `a::b::` goes on with a glob or a group; `a::b` is a whole path.
    let open = end == at || token(tokens, end - 1) == Some(&Token::PathSep);
    path.extend(segments);
    at = end;
    match token(tokens, at)? {
        Token::Punct('*') if open => {
            out.push(path);
            Some(at + 1)
        }
        Token::Punct('{') if open => {
            at += 1;
            loop {
                if token(tokens, at)? == &Token::Punct('}') {
                    return Some(at + 1);
                }
                at = use_tree(tokens, at, path.clone(), out)?;
                match token(tokens, at)? {
                    Token::Punct(',') => at += 1,
                    Token::Punct('}') => return Some(at + 1),
                    _ => return None,
                }
            }
        }
        _ if open => None,
        next => {
            if next == &Token::Ident("as".into()) {
                match token(tokens, at + 1)? {
                    Token::Ident(_) => at += 2,
                    _ => return None,
                }
            }
            out.push(path);
            Some(at)
        }
    }
}

/// The top-level module a path names, when it leaves the module it is written in through
/// the root: `crate::x…`, or as many `super::`s as `here` is deep, then `x`.
fn resolve(segments: &[Segment], here: &[&str], modules: &BTreeSet<String>) -> Option<Reference> {
    let below_root = match segments.first()?.name.as_str() {
        "crate" => 1,
        "super" => {
            let supers = segments.iter().take_while(|s| s.name == "super").count();
            // Fewer stay inside this top-level module; more do not compile.
            (supers == here.len()).then_some(supers)?
        }
        _ => return None,
    };
    let named = segments.get(below_root)?;
    modules.contains(&named.name).then(|| Reference {
        module: named.name.clone(),
        line: named.line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts the (module, line) of each reference `source` makes, written in `path`.
    fn assert_refs(source: &str, path: &[&str], expected: &[(&str, usize)]) {
        let modules = ["app", "config", "rpc", "telemetry", "front"]
            .map(String::from)
            .into();
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let found: Vec<(String, usize)> = references(source, &path, &modules)
            .into_iter()
            .map(|r| (r.module, r.line))
            .collect();
        let expected: Vec<(String, usize)> = expected
            .iter()
            .map(|(module, line)| (module.to_string(), *line))
            .collect();
        assert_eq!(found, expected, "in {path:?}:\n{source}");
    }

    #[test]
    fn plain_use_glob_and_alias() {
        assert_refs(
            "use crate::app::App;\nuse crate::config::*;\nuse crate::rpc as calls;",
            &["front"],
            &[("app", 1), ("config", 2), ("rpc", 3)],
        );
    }

    #[test]
    fn nested_braces_name_each_module_on_its_line() {
        assert_refs(
            "use crate::{\n    app::{self, App},\n    config,\n    rpc::{breaker::{State, *}},\n};",
            &["front"],
            &[
                ("app", 2),
                ("app", 2),
                ("config", 3),
                ("rpc", 4),
                ("rpc", 4),
            ],
        );
    }

    #[test]
    fn inline_paths_in_code_and_macros() {
        assert_refs(
            "fn f() {\n    crate::telemetry::metrics::METRICS.reload(\"x\");\n    tokio::select! { _ = crate::rpc::call::<u8>() => {} }\n}",
            &["app"],
            &[("telemetry", 2), ("rpc", 3)],
        );
    }

    #[test]
    fn super_counts_only_when_it_climbs_to_the_root() {
        // In `rpc/host.rs`: one `super` is `rpc`, two are the root; in a top-level file,
        // one is the root already.
        assert_refs(
            "use super::breaker;\nuse super::super::app::App;\nfn f() { super::super::config::load() }",
            &["rpc", "host"],
            &[("app", 2), ("config", 3)],
        );
        assert_refs("use super::app;", &["front"], &[("app", 1)]);
    }

    #[test]
    fn inline_modules_deepen_super() {
        // `tests` inside `rpc/mod.rs`: `super` is `rpc`, not the root.
        assert_refs(
            "fn a() {}\nmod tests {\n    use super::app;\n    use super::super::config;\n}\nuse super::front;",
            &["rpc"],
            &[("config", 4), ("front", 6)],
        );
    }

    #[test]
    fn test_modules_count_too() {
        assert_refs(
            "#[cfg(test)]\nmod tests {\n    use crate::app::App;\n}",
            &["rpc"],
            &[("app", 3)],
        );
    }

    #[test]
    fn ignores_comments_strings_own_module_and_other_crates() {
        assert_refs(
            "//! See [`crate::app`].\n/// crate::config too\nuse crate::rpc::x; // crate::front\nconst S: &str = \"crate::telemetry\";\nuse ::app::x;\nuse app::y;\nuse self::app::z;\nfn f() -> impl Sized + use<> {}\npub(crate) fn g() {}",
            &["rpc"],
            &[],
        );
    }

    #[test]
    fn unknown_names_below_the_root_are_not_modules() {
        // `crate::VERSION` and `super::micro_api` name items of the root, not modules.
        assert_refs(
            "use crate::VERSION;\nfn f() { super::micro_api::x() }",
            &["app"],
            &[],
        );
    }

    #[test]
    fn finds_declared_modules() {
        let root = "//! mod fake;\npub mod app;\nmod config { fn f() { mod inner {} } }\n#[cfg(test)]\nmod rpc;\nuse std::fmt;";
        assert_eq!(
            declared_modules(root),
            ["app", "config", "rpc"].map(String::from).into()
        );
    }
}
