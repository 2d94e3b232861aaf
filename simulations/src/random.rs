//! Counter-based random numbers: each draw of chance is a pure function of the run's seed and
//! of who and what it is for, so a run does not depend on the order things are computed in,
//! and two policies run on the same seed see the same people behave the same way (common
//! random numbers).

/// SplitMix64's finaliser: a bijection of `u64` that scatters nearby inputs.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random numbers of one (seed, subject, occasion).
#[derive(Debug, Clone)]
pub struct Stream {
    state: u64,
}

impl Stream {
    /// The stream for `subject` (e.g. a person) on `occasion` (e.g. their n-th offer).
    pub fn new(seed: u64, subject: u64, occasion: u64) -> Stream {
        Stream {
            state: mix(mix(seed ^ mix(subject)) ^ occasion.wrapping_mul(0xd1b5_4a32_d192_ed03)),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_numbers_have_the_right_mean_and_streams_differ() {
        let mut s = Stream::new(1, 2, 3);
        let mean = (0..100_000).map(|_| s.uniform()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert_ne!(Stream::new(1, 2, 3).next_u64(), Stream::new(1, 2, 4).next_u64());
        assert_eq!(Stream::new(1, 2, 3).next_u64(), Stream::new(1, 2, 3).next_u64());
    }
}
