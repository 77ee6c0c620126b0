//! Guacamole input → RDP fast-path input events (pure functions).

use ironrdp_pdu::input::MousePdu;
use ironrdp_pdu::input::fast_path::{FastPathInputEvent, KeyboardFlags, SynchronizeFlags};
use ironrdp_pdu::input::mouse::PointerFlags;

use crate::keymap::KeyEvent;

/// Guacamole mouse button bits.
const LEFT: i32 = 1;
const MIDDLE: i32 = 2;
const RIGHT: i32 = 4;
const WHEEL_UP: i32 = 8;
const WHEEL_DOWN: i32 = 16;
/// One wheel notch (WHEEL_DELTA).
const WHEEL_STEP: i16 = 120;

/// The keymap's events as fast-path keyboard events.
pub fn key_events(events: &[KeyEvent]) -> Vec<FastPathInputEvent> {
    events
        .iter()
        .map(|e| match *e {
            KeyEvent::Scancode {
                code,
                extended,
                pressed,
            } => {
                let mut flags = KeyboardFlags::empty();
                if extended {
                    flags |= KeyboardFlags::EXTENDED;
                }
                if !pressed {
                    flags |= KeyboardFlags::RELEASE;
                }
                FastPathInputEvent::KeyboardEvent(flags, code)
            }
            KeyEvent::Unicode { ch, pressed } => FastPathInputEvent::UnicodeKeyboardEvent(
                if pressed {
                    KeyboardFlags::empty()
                } else {
                    KeyboardFlags::RELEASE
                },
                ch,
            ),
        })
        .collect()
}

/// The lock state at connect: everything off (the keymap starts so too).
pub fn synchronize(caps_lock: bool, num_lock: bool) -> FastPathInputEvent {
    let mut f = SynchronizeFlags::empty();
    if caps_lock {
        f |= SynchronizeFlags::CAPS_LOCK;
    }
    if num_lock {
        f |= SynchronizeFlags::NUM_LOCK;
    }
    FastPathInputEvent::SyncEvent(f)
}

/// The mouse as the server last saw it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MouseState {
    x: u16,
    y: u16,
    mask: i32,
    known: bool,
}

impl MouseState {
    /// Events for a Guacamole `mouse,x,y,mask`: a move if the position
    /// changed, then a press or release for every button that changed, then
    /// one wheel notch per wheel bit newly set. Positions are clamped to the
    /// desktop.
    pub fn update(
        &mut self,
        x: i32,
        y: i32,
        mask: i32,
        width: u32,
        height: u32,
    ) -> Vec<FastPathInputEvent> {
        let x = x.clamp(0, width.saturating_sub(1).min(u32::from(u16::MAX)) as i32) as u16;
        let y = y.clamp(0, height.saturating_sub(1).min(u32::from(u16::MAX)) as i32) as u16;
        let mut out = Vec::new();
        let ev = |flags: PointerFlags, wheel: i16| {
            FastPathInputEvent::MouseEvent(MousePdu {
                flags,
                number_of_wheel_rotation_units: wheel,
                x_position: x,
                y_position: y,
            })
        };
        if !self.known || (x, y) != (self.x, self.y) {
            out.push(ev(PointerFlags::MOVE, 0));
        }
        let changed = if self.known { mask ^ self.mask } else { mask };
        for (bit, flag) in [
            (LEFT, PointerFlags::LEFT_BUTTON),
            (RIGHT, PointerFlags::RIGHT_BUTTON),
            (MIDDLE, PointerFlags::MIDDLE_BUTTON_OR_WHEEL),
        ] {
            if changed & bit != 0 {
                let down = if mask & bit != 0 {
                    PointerFlags::DOWN
                } else {
                    PointerFlags::empty()
                };
                out.push(ev(flag | down, 0));
            }
        }
        if changed & mask & WHEEL_UP != 0 {
            out.push(ev(PointerFlags::VERTICAL_WHEEL, WHEEL_STEP));
        }
        if changed & mask & WHEEL_DOWN != 0 {
            out.push(ev(PointerFlags::VERTICAL_WHEEL, -WHEEL_STEP));
        }
        self.x = x;
        self.y = y;
        self.mask = mask;
        self.known = true;
        out
    }

    /// Releases for every button still held (session end).
    pub fn release_all(&mut self) -> Vec<FastPathInputEvent> {
        if !self.known {
            return Vec::new();
        }
        let (x, y) = (i32::from(self.x), i32::from(self.y));
        self.update(x, y, 0, u32::from(u16::MAX), u32::from(u16::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(e: &FastPathInputEvent) -> (u16, i16, u16, u16) {
        match e {
            FastPathInputEvent::MouseEvent(m) => (
                m.flags.bits(),
                m.number_of_wheel_rotation_units,
                m.x_position,
                m.y_position,
            ),
            other => panic!("not a mouse event: {other:?}"),
        }
    }

    #[test]
    fn move_press_release_wheel() {
        let mut m = MouseState::default();
        let e = m.update(10, 20, 0, 800, 600);
        assert_eq!(
            e.iter().map(flags).collect::<Vec<_>>(),
            vec![(0x0800, 0, 10, 20)]
        );
        // Same position, left pressed: no move, a press.
        let e = m.update(10, 20, 1, 800, 600);
        assert_eq!(
            e.iter().map(flags).collect::<Vec<_>>(),
            vec![(0x9000, 0, 10, 20)]
        );
        // Moved while held, then released with the right button pressed.
        let e = m.update(11, 20, 4, 800, 600);
        assert_eq!(
            e.iter().map(flags).collect::<Vec<_>>(),
            vec![
                (0x0800, 0, 11, 20),
                (0x1000, 0, 11, 20),
                (0xa000, 0, 11, 20)
            ]
        );
        // Wheel down: one notch, negative.
        let e = m.update(11, 20, 4 | 16, 800, 600);
        assert_eq!(
            e.iter().map(flags).collect::<Vec<_>>(),
            vec![(0x0200, -120, 11, 20)]
        );
        // Releasing the wheel bit sends nothing for the wheel.
        let e = m.update(11, 20, 4, 800, 600);
        assert!(e.is_empty());
        let e = m.release_all();
        assert_eq!(
            e.iter().map(flags).collect::<Vec<_>>(),
            vec![(0x2000, 0, 11, 20)]
        );
    }

    #[test]
    fn positions_are_clamped() {
        let mut m = MouseState::default();
        let e = m.update(-5, 99999, 0, 800, 600);
        assert_eq!(flags(&e[0]), (0x0800, 0, 0, 599));
    }

    #[test]
    fn keys_become_fast_path_events() {
        let e = key_events(&[
            KeyEvent::Scancode {
                code: 0x1d,
                extended: true,
                pressed: true,
            },
            KeyEvent::Scancode {
                code: 0x1e,
                extended: false,
                pressed: false,
            },
            KeyEvent::Unicode {
                ch: 0x20ac,
                pressed: false,
            },
        ]);
        assert_eq!(
            e,
            vec![
                FastPathInputEvent::KeyboardEvent(KeyboardFlags::EXTENDED, 0x1d),
                FastPathInputEvent::KeyboardEvent(KeyboardFlags::RELEASE, 0x1e),
                FastPathInputEvent::UnicodeKeyboardEvent(KeyboardFlags::RELEASE, 0x20ac),
            ]
        );
    }
}
