//! Rectangle decoders.
