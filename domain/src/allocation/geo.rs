//! Distances between places, for the "how far will you travel" rule.

/// A point on the earth in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
}

/// Mean earth radius in kilometres (IUGG).
const EARTH_RADIUS_KM: f64 = 6371.0088;

impl Place {
    /// Great-circle distance in kilometres (haversine); straight-line distance is the honest
    /// promise, since travel times depend on the means of travel we do not ask about.
    pub fn distance_km(self, other: Place) -> f64 {
        let (phi1, phi2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let d_phi = phi2 - phi1;
        let d_lambda = (other.longitude - self.longitude).to_radians();
        let h = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuttgart_to_karlsruhe_is_about_62_km() {
        let stuttgart = Place {
            latitude: 48.7784,
            longitude: 9.1730,
        };
        let karlsruhe = Place {
            latitude: 49.0040,
            longitude: 8.4037,
        };
        let d = stuttgart.distance_km(karlsruhe);
        assert!((61.0..63.0).contains(&d), "{d}");
        assert_eq!(stuttgart.distance_km(stuttgart), 0.0);
        assert!((stuttgart.distance_km(karlsruhe) - karlsruhe.distance_km(stuttgart)).abs() < 1e-9);
    }
}
