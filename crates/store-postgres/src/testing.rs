//! Throw-away PostgreSQL databases for tests: one uniquely named database per test,
//! dropped afterwards, so that test runs never see each other's data.

use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;

/// The server named by `AUTOLOG_TEST_POSTGRES_URL`, if the PostgreSQL tests are switched on.
/// Under `AUTOLOG_REQUIRE_POSTGRES=1` (CI) a missing URL fails the test instead of skipping it.
pub fn test_server_url() -> Option<String> {
    let url = std::env::var("AUTOLOG_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let required = std::env::var("AUTOLOG_REQUIRE_POSTGRES").as_deref() == Ok("1");
    assert!(
        url.is_some() || !required,
        "AUTOLOG_REQUIRE_POSTGRES=1 but AUTOLOG_TEST_POSTGRES_URL is not set"
    );
    url
}

/// A database created for one test; call [`TestDatabase::drop_database`] at the end.
pub struct TestDatabase {
    server_url: String,
    pub name: String,
    pub url: String,
}

fn with_database(server_url: &str, name: &str) -> String {
    // Replace the path of the URL (the database name), keeping any query string.
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

impl TestDatabase {
    /// Creates `autolog_test_<random>` on the server at `server_url`.
    /// Panics when the server cannot be reached: a switched-on PostgreSQL test must fail then.
    pub async fn create(server_url: &str) -> TestDatabase {
        let name = format!("autolog_test_{}", uuid_hex());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(server_url)
            .await
            .unwrap_or_else(|e| panic!("AUTOLOG_TEST_POSTGRES_URL is set but PostgreSQL is unreachable at {server_url}: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        admin.close().await;
        TestDatabase {
            url: with_database(server_url, &name),
            server_url: server_url.to_string(),
            name,
        }
    }

    pub async fn drop_database(self) {
        if let Ok(admin) = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.server_url)
            .await
        {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
            admin.close().await;
        }
    }
}

/// A full disk as the application sees it, on a test database: while switched on, every
/// COMMIT that wrote ledger events or the writer's probe fails with SQLSTATE 53100
/// (disk_full), as PostgreSQL answers when it cannot extend a file. Nothing else changes.
pub struct DiskFullDrill {
    url: String,
}

impl DiskFullDrill {
    /// Installs the drill's table and deferred triggers on the database at `url`.
    pub async fn install(url: &str) -> Result<DiskFullDrill, sqlx::Error> {
        let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
        pool.execute(
            "CREATE TABLE drill_disk_full (full_since timestamptz NOT NULL);
             CREATE FUNCTION drill_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF EXISTS (SELECT 1 FROM drill_disk_full) THEN
                     RAISE EXCEPTION 'could not extend file: No space left on device (drill)'
                         USING ERRCODE = '53100';
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER drill_disk_full AFTER INSERT ON events
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION drill_disk_full();
             CREATE CONSTRAINT TRIGGER drill_disk_full AFTER INSERT ON writer_probe
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION drill_disk_full();",
        )
        .await?;
        pool.close().await;
        Ok(DiskFullDrill {
            url: url.to_string(),
        })
    }

    /// The disk is full from now on.
    pub async fn fill(&self) -> Result<(), sqlx::Error> {
        self.run("INSERT INTO drill_disk_full VALUES (now())").await
    }

    /// Space is back.
    pub async fn free(&self) -> Result<(), sqlx::Error> {
        self.run("DELETE FROM drill_disk_full").await
    }

    async fn run(&self, sql: &str) -> Result<(), sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await?;
        pool.execute(sql).await?;
        pool.close().await;
        Ok(())
    }
}

fn uuid_hex() -> String {
    autolog_domain::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_replaces_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
