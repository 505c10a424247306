//! The execution side: which interpreters this machine has (and, as it grows, the queue,
//! workers, runtime instances, recovery and sweeper).

pub mod interpreters;
