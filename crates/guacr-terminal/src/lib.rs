//! Sans-IO terminal emulation rendered to Guacamole drawing instructions.
