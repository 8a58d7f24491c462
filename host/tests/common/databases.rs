//! The databases behind a test host: its own SQLite, the external MySQL and PostgreSQL a
//! run may configure (each test on a scratch database of its own), and password hashes to
//! store users in them.

use super::host::TestHost;

/// An argon2id hash with the host's parameters, to store users the tests add.
pub fn argon2id(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(19456, 2, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// The URL of a host's own SQLite database (the default `[database]`).
pub fn sqlite_url(host: &TestHost) -> String {
    format!(
        "sqlite://{}",
        host.dir.path().join("data/micro-api.db").display()
    )
}

/// The external databases configured for this run: (name, admin URL).
pub fn external_databases() -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for (name, var) in [
        ("mysql", "MICRO_API_TEST_MYSQL_URL"),
        ("postgres", "MICRO_API_TEST_POSTGRES_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => found.push((name, url)),
            _ => eprintln!("SKIPPED on {name}: set {var} to run this test there too"),
        }
    }
    found
}

/// A database of its own for one test, dropped at the end: tests never share state, and
/// the machine's shared `test` database stays clean.
pub struct ScratchDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    pub async fn create(kind: &str, admin_url: &str) -> Self {
        use sqlx::{AssertSqlSafe, Connection};
        let name = format!("micro_api_test_{}", rand::random::<u32>());
        let sql = format!("CREATE DATABASE {name}");
        match kind {
            "mysql" => {
                let mut c = sqlx::MySqlConnection::connect(admin_url).await.unwrap();
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            _ => {
                let mut c = sqlx::PgConnection::connect(admin_url).await.unwrap();
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
        let mut url = url::Url::parse(admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        Self {
            url: url.to_string(),
            admin_url: admin_url.to_string(),
            name,
        }
    }

    pub async fn drop_database(self) {
        use sqlx::{AssertSqlSafe, Connection};
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        if self.admin_url.starts_with("mysql") {
            let mut c = sqlx::MySqlConnection::connect(&self.admin_url)
                .await
                .unwrap();
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
        } else {
            let mut c = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
            let force = format!("{} WITH (FORCE)", sql);
            sqlx::query(AssertSqlSafe(force))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}
