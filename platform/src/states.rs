//! The state columns of the schema as Rust types: one enum per `CHECK (... IN (...))`, so a
//! new state is a compile error wherever it is not handled, and a test compares each enum with
//! its constraint in the migrated schema.

use serde::Serialize;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// Declares an enum stored as one of a fixed set of texts.
macro_rules! stored_states {
    ($(
        $(#[$doc:meta])*
        $name:ident in $table:literal . $column:literal {
            $($(#[$vdoc:meta])* $variant:ident = $text:literal,)*
        }
    )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every state, in the order of the schema's constraint.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// The table and column that store it.
            pub const COLUMN: (&'static str, &'static str) = ($table, $column);

            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The state stored as `text`.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl Decode<'_, Postgres> for $name {
            fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                $name::parse(text).ok_or_else(|| {
                    format!("{:?} is not a state of {}.{}", text, $table, $column).into()
                })
            }
        }
    )*

    /// Every stored state type: its table, column and texts, for the schema check.
    pub const ALL_STATE_COLUMNS: &[(&str, &str, fn() -> Vec<&'static str>)] = &[
        $(($table, $column, || $name::ALL.iter().map(|s| s.as_str()).collect()),)*
    ];
    };
}

stored_states! {
    /// Where a registration stands.
    RegistrantStatus in "registrants"."status" {
        /// Registered, the SMS code not yet entered.
        PendingVerification = "pending_verification",
        /// Verified, with a booking code: in the pool.
        Active = "active",
        /// Withdrawn; personal data erased.
        Withdrawn = "withdrawn",
        /// Never verified, and given up once its last code was long dead; personal data erased.
        Expired = "expired",
    }

    /// How a person registered.
    RegistrationChannel in "registrants"."channel" {
        Web = "web",
        Callcentre = "callcentre",
    }

    /// A slot pair's life.
    SlotPairState in "slot_pairs"."state" {
        Open = "open",
        Offered = "offered",
        Booked = "booked",
        Cancelled = "cancelled",
        Used = "used",
    }

    /// An offer's life.
    OfferState in "offers"."state" {
        Pending = "pending",
        Accepted = "accepted",
        Declined = "declined",
        Expired = "expired",
        /// The centre withdrew the capacity, or the person withdrew.
        Withdrawn = "withdrawn",
    }

    /// A booking's life.
    BookingState in "bookings"."state" {
        Booked = "booked",
        FirstDoseGiven = "first_dose_given",
        Completed = "completed",
        Cancelled = "cancelled",
    }

    /// A draw's life.
    DrawState in "draws"."state" {
        /// The seed's hash is published; the draw runs.
        Committed = "committed",
        Completed = "completed",
        Failed = "failed",
    }

    /// A message's delivery to the provider.
    DeliveryState in "deliveries"."state" {
        /// An attempt is with the provider, or may have reached it and its answer was lost:
        /// the next attempt asks the provider first.
        Sending = "sending",
        /// The last attempt certainly did not reach the provider (a 429, a refused connection);
        /// it waits for its retry.
        Waiting = "waiting",
        Sent = "sent",
        /// Given up; in the dead-letter queue.
        Dead = "dead",
    }
}
