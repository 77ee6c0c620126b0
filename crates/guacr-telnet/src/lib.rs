//! Sans-IO Telnet client core.
