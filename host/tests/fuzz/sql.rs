//! Fuzz target: SQL: the placeholder rewriter for PostgreSQL, and SQL values through the
//! WIT type and a real SQLite.

use micro_api::sql::Value;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::fuzz;

#[derive(Debug, Clone)]
pub(crate) enum SqlToken {
    Placeholder,
    Word(String),
    Backticked(String),
    Literal(String),
    EscapeLiteral(String),
    Quoted(String),
    LineComment(String),
    BlockComment(String),
    /// `$tag$body$tag$` (an empty tag is `$$...$$`).
    DollarQuoted(String, String),
}

pub(crate) fn sql_token() -> impl Strategy<Value = SqlToken> {
    prop_oneof![
        Just(SqlToken::Placeholder),
        "[a-z_][a-z0-9_]{0,6}|[ ,()=*<>+-]|[0-9]{1,3}".prop_map(SqlToken::Word),
        "[^`]{0,8}".prop_map(SqlToken::Backticked),
        "([^']|''){0,8}".prop_map(SqlToken::Literal),
        "([^'\\\\]|''|\\\\.){0,8}".prop_map(SqlToken::EscapeLiteral),
        "([^\"]|\"\"){0,8}".prop_map(SqlToken::Quoted),
        "[^\n]{0,10}".prop_map(SqlToken::LineComment),
        "([^*/]|/[^*/]|\\*[^*/]){0,6}".prop_map(SqlToken::BlockComment),
        // The body may hold `?`, quotes and other dollars, never its own delimiter.
        ("|[a-z_][a-z0-9_]{0,3}", "([^$]|\\$[^$a-z_]){0,8}")
            .prop_map(|(tag, body)| SqlToken::DollarQuoted(tag, body)),
    ]
}

#[test]
fn sql_rewriter() {
    use micro_api::sql::rewrite::for_postgres;
    fuzz("sql rewriter, any text", 4_000, "\\PC{0,120}", |sql| {
        let rewritten = for_postgres(&sql);
        prop_assert!(rewritten.matches('$').count() >= sql.matches('$').count());
        Ok(())
    });
    let statement = proptest::collection::vec(sql_token(), 0..16);
    fuzz("sql rewriter, literals", 4_000, statement, |tokens| {
        let (mut sql, mut expected, mut n) = (String::new(), String::new(), 0);
        for token in &tokens {
            // A space between tokens, so no two glue into one (`a` `E'x'` is not `aE'x'`).
            let (input, output) = match token {
                SqlToken::Placeholder => {
                    n += 1;
                    ("?".to_string(), format!("${n}"))
                }
                SqlToken::Word(w) => (w.clone(), w.clone()),
                SqlToken::Backticked(i) => {
                    (format!("`{i}`"), format!("\"{}\"", i.replace('"', "\"\"")))
                }
                SqlToken::Literal(l) => (format!("'{l}'"), format!("'{l}'")),
                SqlToken::EscapeLiteral(l) => (format!("E'{l}'"), format!("E'{l}'")),
                SqlToken::Quoted(q) => (format!("\"{q}\""), format!("\"{q}\"")),
                SqlToken::LineComment(c) => (format!("--{c}\n"), format!("--{c}\n")),
                SqlToken::BlockComment(c) => (format!("/*{c}*/"), format!("/*{c}*/")),
                SqlToken::DollarQuoted(tag, body) => {
                    let quoted = format!("${tag}${body}${tag}$");
                    (quoted.clone(), quoted)
                }
            };
            sql.push_str(&input);
            sql.push(' ');
            expected.push_str(&output);
            expected.push(' ');
        }
        prop_assert_eq!(for_postgres(&sql), expected, "{}", sql);
        Ok(())
    });
}

fn sql_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>()
            .prop_filter("SQLite stores NaN as NULL", |f| !f.is_nan())
            .prop_map(Value::Real),
        "\\PC{0,40}".prop_map(Value::Text),
        "[\\x00-\\x7f]{0,10}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Blob),
    ]
}

#[test]
fn sql_values_at_the_wit_boundary() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("fuzz.db").display());
    let db = runtime.block_on(micro_api::sql::connect(&url, 1)).unwrap();
    let values = proptest::collection::vec(sql_value(), 1..4);
    fuzz("sql values", 1_000, values, |values| {
        // The WIT type is the host's own: through a real SQLite and back.
        let select = format!("SELECT {}", vec!["?"; values.len()].join(", "));
        let rows = runtime
            .block_on(db.query(&select, &values))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&rows.rows[0], &values);
        prop_assert_eq!(rows.columns.len(), values.len());
        Ok(())
    });
}
