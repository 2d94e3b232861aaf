//! Every SQL statement of every component, prepared against a freshly migrated database: a renamed
//! column or table, a wrong type or a typo fails here, not in production. And every state
//! column's Rust enum against its `CHECK` constraint.

use std::collections::BTreeSet;

use drawbridge_platform::postgres::MIGRATOR;
use drawbridge_platform::states::ALL_STATE_COLUMNS;
use sqlx::{Connection, Executor, PgConnection, PgPool};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A new database with every migration applied.
async fn migrated_database() -> PgPool {
    let name = format!("drawbridge_schema_{}", uuid::Uuid::new_v4().simple());
    let mut server = PgConnection::connect(&format!("{SERVER}/postgres"))
        .await
        .expect("PostgreSQL runs on 127.0.0.1:5432");
    server
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create the test database");
    let pool = PgPool::connect(&format!("{SERVER}/{name}"))
        .await
        .expect("connect to the test database");
    MIGRATOR.run(&pool).await.expect("migrations apply");
    pool
}

#[tokio::test]
async fn every_statement_prepares_against_the_schema() {
    let pool = migrated_database().await;
    let statements = drawbridge::all_statements();
    assert!(
        statements.len() > 90,
        "only {} statements found",
        statements.len()
    );
    let mut failures = Vec::new();
    for (name, sql) in &statements {
        if let Err(error) = pool.describe(sql).await {
            failures.push(format!("{name}: {error}"));
        }
    }
    assert!(
        failures.is_empty(),
        "statements the schema refuses:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_statement_naming_a_column_that_does_not_exist_is_refused() {
    // The check above can fail: a misspelt column is caught when the statement is prepared.
    let pool = migrated_database().await;
    assert!(pool
        .describe("SELECT phone_number FROM registrants")
        .await
        .is_err());
    assert!(pool.describe("SELECT phone FROM registrants").await.is_ok());
}

/// The texts a `CHECK (column IN (...))` constraint on `table.column` allows.
async fn allowed_states(pool: &PgPool, table: &str, column: &str) -> BTreeSet<String> {
    let definitions: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
         JOIN pg_class t ON t.oid = c.conrelid
         WHERE t.relname = $1 AND c.contype = 'c'",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .expect("read the constraints");
    let prefix = format!("CHECK (({column} = ANY");
    let definition = definitions
        .iter()
        .find(|d| d.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no CHECK on {table}.{column} in {definitions:?}"));
    definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_state_enum_has_exactly_the_states_its_column_allows() {
    let pool = migrated_database().await;
    for (table, column, states) in ALL_STATE_COLUMNS {
        let allowed = allowed_states(&pool, table, column).await;
        let ours: BTreeSet<String> = states().into_iter().map(str::to_owned).collect();
        assert_eq!(ours, allowed, "{table}.{column}");
    }
}

/// Every `table.column` the data inventory's tables name (in backticks, in a table row's first
/// cell), up to its part about what lies outside PostgreSQL.
fn inventoried_columns(inventory: &str) -> BTreeSet<String> {
    let (database, _) = inventory
        .split_once("\n## Outside PostgreSQL")
        .unwrap_or((inventory, ""));
    database
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|row| row.split(" |").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|name| {
            name.split_once('.')
                .is_some_and(|(table, column)| !table.is_empty() && !column.is_empty() && !name.contains(' '))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_data_inventory_names_every_column_of_the_schema() {
    let pool = migrated_database().await;
    let columns: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name || '.' || column_name FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert!(columns.len() > 150, "{columns:?}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/data-inventory.md");
    let inventory = std::fs::read_to_string(path).unwrap();
    let named = inventoried_columns(&inventory);
    let missing: Vec<_> = columns.difference(&named).collect();
    let gone: Vec<_> = named.difference(&columns).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "docs/data-inventory.md lacks {missing:?} and names {gone:?}, which the schema has not"
    );
}

#[test]
fn the_inventory_is_read_from_the_first_cell_of_its_rows() {
    let named = inventoried_columns(
        "| `a.b` | what `c.d` |\n| `e.f`, `g.h` | x |\n|---|---|\n| `file.md` is | y |\n`i.j`\n\
         ## Outside PostgreSQL\n| `k.l` | z |\n",
    );
    let expected: BTreeSet<String> = ["a.b", "e.f", "g.h", "file.md"].map(String::from).into();
    assert_eq!(named, expected);
}
