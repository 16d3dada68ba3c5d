//! How requests are matched to routes, shared by the layer's route table and the
//! authorization rules: route patterns ([`pattern`]) and the ways servers may read a path
//! ([`path`]: ambiguous and malformed paths, the router's decoded segments, every
//! resolution).

pub(crate) mod path;
pub(crate) mod pattern;
