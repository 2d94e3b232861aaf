//! Storing planned slot pairs. Centres think in local wall-clock time; the database stores
//! instants, converted with the region's time zone here at the edge.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use drawbridge_domain::PlannedPair;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::statements;

statements! {
    INSERT_SLOT_PAIRS =
        "INSERT INTO slot_pairs (id, centre_id, vaccine, first_slot_at, second_slot_at, batch_id)
         SELECT id, $2, $3, first_at, second_at, $6
         FROM UNNEST($1::uuid[], $4::timestamptz[], $5::timestamptz[]) AS t(id, first_at, second_at)";
}

#[derive(Debug, thiserror::Error)]
pub enum CapacityStoreError {
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("{0} does not exist in local time (clocks skip it); choose another slot time")]
    SkippedLocalTime(NaiveDateTime),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn instant(tz: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, CapacityStoreError> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        // When clocks go back a time happens twice; the first is the one people expect.
        LocalResult::Ambiguous(first, _) => Ok(first.with_timezone(&Utc)),
        LocalResult::None => Err(CapacityStoreError::SkippedLocalTime(local)),
    }
}

/// Inserts open slot pairs for a centre in one statement, as part of capacity batch `batch`
/// if given; returns their ids.
pub async fn insert_pairs(
    connection: &mut PgConnection,
    centre_id: &str,
    vaccine: &str,
    timezone: &str,
    pairs: &[PlannedPair],
    batch: Option<Uuid>,
) -> Result<Vec<Uuid>, CapacityStoreError> {
    let tz: Tz = timezone
        .parse()
        .map_err(|_| CapacityStoreError::TimeZone(timezone.to_owned()))?;
    let ids: Vec<Uuid> = pairs.iter().map(|_| Uuid::new_v4()).collect();
    let firsts = pairs
        .iter()
        .map(|p| instant(tz, p.first))
        .collect::<Result<Vec<_>, _>>()?;
    let seconds = pairs
        .iter()
        .map(|p| p.second.map(|s| instant(tz, s)).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    sqlx::query(INSERT_SLOT_PAIRS)
        .bind(&ids)
        .bind(centre_id)
        .bind(vaccine)
        .bind(&firsts)
        .bind(&seconds)
        .bind(batch)
        .execute(connection)
        .await?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn local_times_convert_with_daylight_saving() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let winter = NaiveDate::from_ymd_opt(2021, 1, 4)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let summer = NaiveDate::from_ymd_opt(2021, 6, 4)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        assert_eq!(
            instant(tz, winter).unwrap().to_rfc3339(),
            "2021-01-04T08:00:00+00:00"
        );
        assert_eq!(
            instant(tz, summer).unwrap().to_rfc3339(),
            "2021-06-04T07:00:00+00:00"
        );
        let skipped = NaiveDate::from_ymd_opt(2021, 3, 28)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert!(matches!(
            instant(tz, skipped),
            Err(CapacityStoreError::SkippedLocalTime(_))
        ));
    }
}
