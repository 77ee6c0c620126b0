//! The sans-IO Telnet client over arbitrary server bytes: option negotiation,
//! subnegotiations, IAC escaping and the login automation must never panic,
//! and feeding in chunks must equal feeding at once (checked inside).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    guacr_telnet::fuzz_receive(data);
});
