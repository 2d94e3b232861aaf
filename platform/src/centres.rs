//! Vaccination centres and the postcode areas people live in, as a region admin sets them up:
//! one centre at a time in the console, or many from a CSV file, in the console or with
//! `drawbridge centres import` and `drawbridge postcodes import`; both call this code. An import
//! checks every line first and changes nothing unless all of them are right; a dry run stops
//! after the check and says what would change.

use std::collections::{BTreeMap, HashMap, HashSet};

use drawbridge_domain::Postcode;
use serde::Serialize;
use sqlx::PgConnection;

use crate::policies::{self, PublishError};
use crate::statements;
use crate::table_file::{self, all_or_errors, Change, FileErrors, Imported, Line, LineError, Row};

statements! {
    CENTRES_OF_REGION =
        "SELECT id, region_id, name, address, postcode, latitude, longitude, vaccines, closed_at IS NOT NULL AS closed
         FROM centres WHERE region_id = $1 ORDER BY name";
    CENTRE_REGIONS = "SELECT id, region_id FROM centres WHERE id = ANY($1)";
    /// Creates a centre or changes one of the same region (never another region's).
    SAVE_CENTRE =
        "INSERT INTO centres (id, region_id, name, address, postcode, latitude, longitude, vaccines)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address,
             postcode = EXCLUDED.postcode, latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,
             vaccines = EXCLUDED.vaccines
         WHERE centres.region_id = EXCLUDED.region_id";
    SET_CLOSED =
        "UPDATE centres SET closed_at = CASE WHEN $3 THEN coalesce(closed_at, now()) END
         WHERE id = $1 AND region_id = $2";
    POSTCODE_AREAS_IN = "SELECT postcode, latitude, longitude FROM postcode_areas WHERE postcode = ANY($1)";
    SAVE_POSTCODE_AREAS =
        "INSERT INTO postcode_areas (postcode, latitude, longitude)
         SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[])
         ON CONFLICT (postcode) DO UPDATE SET latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude";
    POSTCODE_AREA_COUNT = "SELECT count(*) FROM postcode_areas";
}

/// The columns of a centres file; `vaccines` may be left out or empty (every vaccine of the
/// region's policy).
pub const CENTRE_COLUMNS: [&str; 6] = ["id", "name", "address", "postcode", "latitude", "longitude"];
/// The columns of a postcode areas file.
pub const POSTCODE_COLUMNS: [&str; 3] = ["postcode", "latitude", "longitude"];

/// A centre's set-up: where it is and what it gives.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CentreSetup {
    pub id: String,
    pub name: String,
    pub address: String,
    pub postcode: String,
    pub latitude: f64,
    pub longitude: f64,
    /// `None`: every vaccine of the region's policy.
    pub vaccines: Option<Vec<String>>,
}

/// A centre as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Centre {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub setup: CentreSetup,
    #[sqlx(rename = "region_id")]
    pub region: String,
    pub closed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Lines that are not right; nothing was changed.
    #[error(transparent)]
    Lines(#[from] FileErrors),
    #[error("there is no centre {0:?} in this region")]
    UnknownCentre(String),
    #[error("region {0:?} has no published policy")]
    NoPolicy(String),
    #[error(transparent)]
    Policy(#[from] PublishError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn is_code(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl CentreSetup {
    /// The centre a line describes, every field checked; `vaccines` may list codes separated by
    /// spaces, `,`, `;` or `|`.
    pub fn from_line(line: &Line) -> Result<CentreSetup, LineError> {
        let wrong =
            |code, values: &[(&str, &dyn std::fmt::Display)]| LineError::new(line.number, code, values);
        let id = line.get("id");
        if !is_code(id, 64) {
            return Err(wrong("centre_id", &[("id", &id)]));
        }
        let name = line.get("name");
        let address = line.get("address");
        if name.is_empty() || address.is_empty() {
            return Err(wrong("name_and_address", &[("id", &id)]));
        }
        let postcode = line.get("postcode");
        if Postcode::parse(postcode).is_err() {
            return Err(wrong("postcode", &[("postcode", &postcode)]));
        }
        let (latitude, longitude) = (line.number("latitude")?, line.number("longitude")?);
        check_place(line.number, latitude, longitude)?;
        let vaccines: Vec<String> = line
            .get("vaccines")
            .split([' ', ',', ';', '|'])
            .filter(|code| !code.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = vaccines.iter().find(|code| !is_code(code, 64)) {
            return Err(wrong("vaccine_code", &[("code", bad)]));
        }
        Ok(CentreSetup {
            id: id.to_owned(),
            name: name.to_owned(),
            address: address.to_owned(),
            postcode: postcode.to_owned(),
            latitude,
            longitude,
            vaccines: (!vaccines.is_empty()).then_some(vaccines),
        })
    }
}

fn check_place(line: usize, latitude: f64, longitude: f64) -> Result<(), LineError> {
    if !(-90.0..=90.0).contains(&latitude) {
        return Err(LineError::new(line, "latitude", &[("value", &latitude)]));
    }
    if !(-180.0..=180.0).contains(&longitude) {
        return Err(LineError::new(line, "longitude", &[("value", &longitude)]));
    }
    Ok(())
}

/// The region's centres, by name.
pub async fn centres(connection: &mut PgConnection, region: &str) -> Result<Vec<Centre>, sqlx::Error> {
    sqlx::query_as(CENTRES_OF_REGION)
        .bind(region)
        .fetch_all(connection)
        .await
}

/// Reads a centres file (see [`CENTRE_COLUMNS`]).
pub fn read_centres(text: &str) -> Result<Vec<(usize, CentreSetup)>, FileErrors> {
    let lines = table_file::read(text, &CENTRE_COLUMNS)?;
    all_or_errors(
        lines
            .iter()
            .map(|line| CentreSetup::from_line(line).map(|setup| (line.number, setup)))
            .collect(),
    )
}

/// Creates or changes the centres of `region` (each line's number beside it), unless a line is
/// wrong: an id twice, an id of another region's centre, a vaccine the region's policy does not
/// know. With `dry_run`, only says what it would do.
pub async fn save_centres(
    connection: &mut PgConnection,
    region: &str,
    setups: Vec<(usize, CentreSetup)>,
    dry_run: bool,
) -> Result<Imported<CentreSetup>, SetupError> {
    let policy = policies::current(&mut *connection, region)
        .await?
        .ok_or_else(|| SetupError::NoPolicy(region.to_owned()))?;
    let known: HashSet<&str> = policy.policy.vaccines.iter().map(|v| v.code.as_str()).collect();
    let ids: Vec<&str> = setups.iter().map(|(_, setup)| setup.id.as_str()).collect();
    let regions: HashMap<String, String> = sqlx::query_as(CENTRE_REGIONS)
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await?
        .into_iter()
        .collect();
    let stored: HashMap<String, CentreSetup> = centres(&mut *connection, region)
        .await?
        .into_iter()
        .map(|centre| (centre.setup.id.clone(), centre.setup))
        .collect();
    let mut seen = HashSet::new();
    let checked = setups
        .into_iter()
        .map(|(line, setup)| {
            let wrong =
                |code, values: &[(&str, &dyn std::fmt::Display)]| Err(LineError::new(line, code, values));
            if !seen.insert(setup.id.clone()) {
                return wrong("centre_twice", &[("id", &setup.id)]);
            }
            match regions.get(&setup.id) {
                Some(other) if other != region => {
                    return wrong("centre_of_other_region", &[("id", &setup.id), ("region", other)])
                }
                _ => {}
            }
            let vaccines = setup.vaccines.iter().flatten();
            if let Some(unknown) = vaccines.into_iter().find(|code| !known.contains(code.as_str())) {
                let known = sorted(&known);
                return wrong(
                    "unknown_vaccine",
                    &[("region", &region), ("vaccine", unknown), ("known", &known)],
                );
            }
            let change = match stored.get(&setup.id) {
                None => Change::Created,
                Some(before) if *before == setup => Change::Unchanged,
                Some(_) => Change::Changed,
            };
            Ok(Row {
                line,
                row: setup,
                change,
            })
        })
        .collect();
    let rows = all_or_errors(checked)?;
    if !dry_run {
        for row in rows.iter().filter(|row| row.change != Change::Unchanged) {
            let setup = &row.row;
            sqlx::query(SAVE_CENTRE)
                .bind(&setup.id)
                .bind(region)
                .bind(&setup.name)
                .bind(&setup.address)
                .bind(&setup.postcode)
                .bind(setup.latitude)
                .bind(setup.longitude)
                .bind(&setup.vaccines)
                .execute(&mut *connection)
                .await?;
        }
    }
    Ok(Imported { dry_run, rows })
}

fn sorted(codes: &HashSet<&str>) -> String {
    let mut codes: Vec<&str> = codes.iter().copied().collect();
    codes.sort_unstable();
    codes.join(", ")
}

/// Closes a centre of `region` (no capacity is published there and its open pairs are offered
/// to nobody; what is booked stays) or opens it again.
pub async fn set_closed(
    connection: &mut PgConnection,
    region: &str,
    id: &str,
    closed: bool,
) -> Result<(), SetupError> {
    let changed = sqlx::query(SET_CLOSED)
        .bind(id)
        .bind(region)
        .bind(closed)
        .execute(connection)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(SetupError::UnknownCentre(id.to_owned()));
    }
    Ok(())
}

/// A postcode area's centroid, as a file gives it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PostcodeCentroid {
    pub postcode: String,
    pub latitude: f64,
    pub longitude: f64,
}

/// Reads a postcode areas file (see [`POSTCODE_COLUMNS`]).
pub fn read_postcodes(text: &str) -> Result<Vec<(usize, PostcodeCentroid)>, FileErrors> {
    let lines = table_file::read(text, &POSTCODE_COLUMNS)?;
    let mut seen = HashSet::new();
    all_or_errors(
        lines
            .iter()
            .map(|line| {
                let postcode = line.get("postcode");
                if Postcode::parse(postcode).is_err() {
                    return Err(LineError::new(
                        line.number,
                        "postcode",
                        &[("postcode", &postcode)],
                    ));
                }
                if !seen.insert(postcode.to_owned()) {
                    return Err(LineError::new(
                        line.number,
                        "postcode_twice",
                        &[("postcode", &postcode)],
                    ));
                }
                let (latitude, longitude) = (line.number("latitude")?, line.number("longitude")?);
                check_place(line.number, latitude, longitude)?;
                Ok((
                    line.number,
                    PostcodeCentroid {
                        postcode: postcode.to_owned(),
                        latitude,
                        longitude,
                    },
                ))
            })
            .collect(),
    )
}

/// Creates or moves postcode areas' centroids (they are the same in every region), in one
/// statement; with `dry_run`, only says what it would do.
pub async fn save_postcodes(
    connection: &mut PgConnection,
    centroids: Vec<(usize, PostcodeCentroid)>,
    dry_run: bool,
) -> Result<Imported<PostcodeCentroid>, SetupError> {
    let postcodes: Vec<&str> = centroids.iter().map(|(_, c)| c.postcode.as_str()).collect();
    let stored: BTreeMap<String, PostcodeCentroid> = sqlx::query_as::<_, PostcodeCentroid>(POSTCODE_AREAS_IN)
        .bind(&postcodes)
        .fetch_all(&mut *connection)
        .await?
        .into_iter()
        .map(|centroid| (centroid.postcode.clone(), centroid))
        .collect();
    let rows: Vec<Row<PostcodeCentroid>> = centroids
        .into_iter()
        .map(|(line, centroid)| Row {
            line,
            change: match stored.get(&centroid.postcode) {
                None => Change::Created,
                Some(before) if *before == centroid => Change::Unchanged,
                Some(_) => Change::Changed,
            },
            row: centroid,
        })
        .collect();
    if !dry_run {
        let changed = rows.iter().filter(|row| row.change != Change::Unchanged);
        let (mut codes, mut latitudes, mut longitudes) = (Vec::new(), Vec::new(), Vec::new());
        for row in changed {
            codes.push(row.row.postcode.as_str());
            latitudes.push(row.row.latitude);
            longitudes.push(row.row.longitude);
        }
        sqlx::query(SAVE_POSTCODE_AREAS)
            .bind(&codes)
            .bind(&latitudes)
            .bind(&longitudes)
            .execute(&mut *connection)
            .await?;
    }
    Ok(Imported { dry_run, rows })
}

/// How many postcode areas are known.
pub async fn postcode_count(connection: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(POSTCODE_AREA_COUNT)
        .fetch_one(connection)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_centres_file_is_read_with_every_wrong_line_named() {
        let text = "id;name;address;postcode;latitude;longitude;vaccines\n\
            ulm-messe;Impfzentrum Ulm;Böfinger Str. 50, 89073 Ulm;89073;48,4152;9,9951;biontech, moderna\n\
            Ulm;Ulm;Somewhere;89073;48.4;9.9;\n\
            aalen;Aalen;Street 1;7343;48.8;10.1;\n\
            heilbronn;Heilbronn;Street 2;74072;148.8;9.2;\n\
            tuebingen;Tübingen;Street 3;72070;48.5;9.0;\n";
        let errors = read_centres(text).unwrap_err().0;
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5], "{errors:?}");
        assert!(errors[2].message.contains("latitude 148.8"), "{errors:?}");
        let good = read_centres(
            "id,name,address,postcode,latitude,longitude,vaccines\n\
             ulm-messe,Impfzentrum Ulm,\"Böfinger Str. 50, 89073 Ulm\",89073,48.4152,9.9951,biontech moderna\n\
             tuebingen,Tübingen,Street 3,72070,48.5,9.0,\n",
        )
        .unwrap();
        assert_eq!(
            good[0].1.vaccines.as_deref(),
            Some(&["biontech".to_owned(), "moderna".to_owned()][..])
        );
        assert_eq!(good[0].1.address, "Böfinger Str. 50, 89073 Ulm");
        assert_eq!(good[1].1.vaccines, None, "an empty list is every vaccine");
    }

    #[test]
    fn a_postcode_twice_is_refused() {
        let errors = read_postcodes("postcode,latitude,longitude\n70173,48.7,9.1\n70173,48.8,9.2\n")
            .unwrap_err()
            .0;
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "line 3: postcode 70173 is on an earlier line too"
        );
    }
}
