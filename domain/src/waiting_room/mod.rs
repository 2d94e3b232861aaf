//! The waiting room: metering a surge of visitors into the APIs behind it, fairly. A [`room`]'s
//! configuration and signed tokens, the [`tickets`] handed out, the [`queue`] a visitor stands
//! in, the pre-queue's [`lineup`] (shuffled or by arrival) and the [`pow`] a room under attack
//! asks for.

pub mod lineup;
pub mod pow;
pub mod queue;
pub mod room;
pub mod tickets;
