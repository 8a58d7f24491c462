//! A Rust tokenizer just deep enough to find paths: identifiers, `::`, braces and the few
//! punctuation marks of a `use` tree, each with its line. Comments (`//`, `///`, `//!`,
//! nested `/* */`) are dropped and literals (strings of every kind, chars, numbers) become
//! one opaque token, so doc text or a string that mentions `crate::foo` is no reference.
//!
//! Written by hand rather than with `syn` (which is in Cargo.lock, through proc-macro
//! crates, but with features the lock does not record): `syn`'s visitor sees a macro call's
//! body as opaque tokens, and host/src names modules inside `tokio::select!`, `format!`
//! arguments and `bindgen!`, so a token scan is needed anyway; and `syn` with `full` would
//! be one more crate compiled by the first `cargo xtask` of every target dir.

/// One token of a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An identifier or keyword; a raw identifier keeps its `r#`, so `r#use` is no `use`,
    /// and `$crate` (in `macro_rules!`) is `crate`.
    Ident(String),
    /// `::`.
    PathSep,
    /// Any other punctuation character.
    Punct(char),
    /// A string, byte string, char, number or lifetime: nothing a path is made of.
    Literal,
}

/// A token and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    pub token: Token,
    pub line: usize,
}

/// The tokens of `source`. Malformed input (an unterminated string or comment) ends the
/// scan early instead of failing: the check reads code that rustc already accepts.
pub fn tokenize(source: &str) -> Vec<Spanned> {
    let mut lexer = Lexer {
        chars: source.chars().collect(),
        at: 0,
        line: 1,
        tokens: Vec::new(),
    };
    lexer.run();
    lexer.tokens
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    line: usize,
    tokens: Vec<Spanned>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    /// Moves past one character, counting lines.
    fn bump(&mut self) {
        if self.peek(0) == Some('\n') {
            self.line += 1;
        }
        self.at += 1;
    }

    fn push(&mut self, token: Token, line: usize) {
        self.tokens.push(Spanned { token, line });
    }

    fn run(&mut self) {
        while let Some(c) = self.peek(0) {
            let line = self.line;
            match c {
                c if c.is_whitespace() => self.bump(),
                '/' if self.peek(1) == Some('/') => self.line_comment(),
                '/' if self.peek(1) == Some('*') => self.block_comment(),
                '"' => {
                    self.string();
                    self.push(Token::Literal, line);
                }
                '\'' => self.quote(line),
                ':' if self.peek(1) == Some(':') => {
                    self.at += 2;
                    self.push(Token::PathSep, line);
                }
                '$' if self.word_at(1) == "crate" => {
                    self.at += 1 + "crate".len();
                    self.push(Token::Ident("crate".into()), line);
                }
                c if c.is_ascii_digit() => {
                    while self
                        .peek(0)
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                        || (self.peek(0) == Some('.')
                            && self.peek(1).is_some_and(|c| c.is_ascii_digit()))
                    {
                        self.bump();
                    }
                    self.push(Token::Literal, line);
                }
                c if is_ident_start(c) => self.word(line),
                c => {
                    self.bump();
                    self.push(Token::Punct(c), line);
                }
            }
        }
    }

    /// The identifier starting `ahead` characters on (empty when there is none).
    fn word_at(&self, ahead: usize) -> String {
        let start = self.at + ahead;
        if !self.chars.get(start).copied().is_some_and(is_ident_start) {
            return String::new();
        }
        self.chars[start..]
            .iter()
            .take_while(|c| is_ident_continue(**c))
            .collect()
    }

    /// An identifier, or the prefix of a literal: `r"…"`, `r#"…"#`, `b"…"`, `br"…"`,
    /// `c"…"`, `b'x'`; or a raw identifier `r#name`.
    fn word(&mut self, line: usize) {
        let word = self.word_at(0);
        self.at += word.chars().count();
        match (word.as_str(), self.peek(0)) {
            ("r" | "br" | "cr", Some('"' | '#')) if self.raw_string() => {
                self.push(Token::Literal, line);
            }
            ("r", Some('#')) if !self.word_at(1).is_empty() => {
                let raw = self.word_at(1);
                self.at += 1 + raw.chars().count();
                self.push(Token::Ident(format!("r#{raw}")), line);
            }
            ("b" | "c", Some('"')) => {
                self.string();
                self.push(Token::Literal, line);
            }
            ("b", Some('\'')) => self.quote(line),
            _ => self.push(Token::Ident(word), line),
        }
    }

    fn line_comment(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    /// A `/* */` comment, nested ones included (as Rust nests them).
    fn block_comment(&mut self) {
        let mut depth = 0;
        while let Some(c) = self.peek(0) {
            if c == '/' && self.peek(1) == Some('*') {
                depth += 1;
                self.at += 2;
            } else if c == '*' && self.peek(1) == Some('/') {
                depth -= 1;
                self.at += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// A `"…"` string with its escapes, from its opening quote.
    fn string(&mut self) {
        self.bump();
        while let Some(c) = self.peek(0) {
            self.bump();
            match c {
                '\\' => self.bump(),
                '"' => return,
                _ => {}
            }
        }
    }

    /// A raw string from its `#`s or opening quote, when it is one (`r#name` is not).
    fn raw_string(&mut self) -> bool {
        let hashes = self.chars[self.at..]
            .iter()
            .take_while(|c| **c == '#')
            .count();
        if self.peek(hashes) != Some('"') {
            return false;
        }
        self.at += hashes;
        self.bump();
        while self.peek(0).is_some() {
            if self.peek(0) == Some('"') && (1..=hashes).all(|i| self.peek(i) == Some('#')) {
                self.at += 1 + hashes;
                return true;
            }
            self.bump();
        }
        true
    }

    /// A char literal (`'a'`, `'\n'`, `'{'`) or a lifetime or label (`'a`), from the quote.
    fn quote(&mut self, line: usize) {
        self.bump();
        if self.peek(0) == Some('\\') {
            self.bump();
            self.bump();
            while self.peek(0).is_some_and(|c| c != '\'') {
                self.bump();
            }
            self.bump();
        } else if self.peek(1) == Some('\'') {
            self.bump();
            self.bump();
        } else {
            while self.peek(0).is_some_and(is_ident_continue) {
                self.bump();
            }
        }
        self.push(Token::Literal, line);
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(source: &str) -> Vec<String> {
        tokenize(source)
            .into_iter()
            .filter_map(|t| match t.token {
                Token::Ident(name) => Some(name),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn drops_comments_of_every_kind() {
        let source =
            "a // crate::b\n/// crate::c\n//! crate::d\n/* crate::e /* nested */ crate::f */ g";
        assert_eq!(idents(source), ["a", "g"]);
    }

    #[test]
    fn strings_and_chars_are_opaque() {
        let source = r####"a "crate::b \" crate::c" r#"crate::d "quoted" "# br##"crate::e"## b"crate::f" c"g" '"' '\'' b'x' 'h'"####;
        assert_eq!(idents(source), ["a"]);
    }

    #[test]
    fn lifetimes_raw_identifiers_and_dollar_crate() {
        let source = "fn f<'a>(x: &'a r#use) -> $crate::y { 'outer: loop {} }";
        assert_eq!(
            idents(source),
            ["fn", "f", "x", "r#use", "crate", "y", "loop"]
        );
    }

    #[test]
    fn counts_lines_across_comments_and_strings() {
        let tokens = tokenize("a\n/* one\ntwo */ b \"x\ny\" c\n// d\ne");
        let lines: Vec<(Token, usize)> = tokens.into_iter().map(|t| (t.token, t.line)).collect();
        assert_eq!(
            lines,
            [
                (Token::Ident("a".into()), 1),
                (Token::Ident("b".into()), 3),
                (Token::Literal, 3),
                (Token::Ident("c".into()), 4),
                (Token::Ident("e".into()), 6),
            ]
        );
    }

    #[test]
    fn paths_separators_and_numbers() {
        let tokens: Vec<Token> = tokenize("crate::a::{b, *}; 1.5e3")
            .into_iter()
            .map(|t| t.token)
            .collect();
        assert_eq!(
            tokens,
            [
                Token::Ident("crate".into()),
                Token::PathSep,
                Token::Ident("a".into()),
                Token::PathSep,
                Token::Punct('{'),
                Token::Ident("b".into()),
                Token::Punct(','),
                Token::Punct('*'),
                Token::Punct('}'),
                Token::Punct(';'),
                Token::Literal,
            ]
        );
    }
}
