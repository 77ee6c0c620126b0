//! Playing back `.guac` session recordings.
//!
//! A recording is the instruction stream guacd sent to the session's users
//! (no handshake), with the users' input interleaved (`mouse,X,Y,MASK,TS;`,
//! `key,KEYSYM,PRESSED,TS;`, `touch,…;`). Every `sync,TS;` ends a frame; its
//! timestamp (milliseconds) places the frame on the timeline. Times given to
//! and returned by [`Player`] are milliseconds since the first `sync`, made
//! monotonic (a timestamp going backwards counts as no time passing).
//!
//! Instructions after the last `sync` belong to no frame and are not played
//! (guacenc does the same). A malformed instruction ends the recording there
//! ([`Player::parse_error`]).

use guacr_protocol::{Instruction, ParseError, Parser};

use crate::display::Display;

/// Default interval between keyframe snapshots, in recording time.
pub const DEFAULT_KEYFRAME_INTERVAL_MS: u64 = 30_000;
/// Default budget for keyframe snapshots, in bytes.
pub const DEFAULT_KEYFRAME_BUDGET: usize = 512 << 20;

/// One frame of the recording: the instructions up to and including a `sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// Milliseconds since the first frame (monotonic).
    pub time_ms: u64,
    /// The `sync` timestamp as recorded.
    pub timestamp: i64,
    /// Byte range of the frame's instructions in the recording.
    pub start: usize,
    pub end: usize,
}

/// Recorded user input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEvent {
    Key { keysym: u32, pressed: bool },
    Mouse { x: i32, y: i32, mask: i32 },
}

/// A recorded input event with its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedInput {
    /// Milliseconds since the first frame (0 for input before it).
    pub time_ms: u64,
    /// The event's own timestamp (the preceding `sync`'s if it has none).
    pub timestamp: i64,
    pub event: InputEvent,
}

#[derive(Debug, Clone)]
struct Keyframe {
    /// Number of frames applied when the snapshot was taken.
    applied: usize,
    display: Display,
    mouse: Option<(i32, i32)>,
}

/// Plays a `.guac` recording held in memory onto a [`Display`].
#[derive(Debug, Clone)]
pub struct Player<'a> {
    data: &'a [u8],
    frames: Vec<FrameInfo>,
    inputs: Vec<RecordedInput>,
    initial_size: Option<(u32, u32)>,
    parse_error: Option<(usize, ParseError)>,
    display: Display,
    applied: usize,
    mouse: Option<(i32, i32)>,
    apply_errors: u64,
    keyframes: Vec<Keyframe>,
    keyframe_interval_ms: Option<u64>,
    keyframe_budget: usize,
}

/// Recordings may hold instructions larger than clients may send.
fn parser() -> Parser {
    Parser::with_limit(usize::MAX / 2)
}

fn mouse_args(ins: &guacr_protocol::InstructionRef<'_>) -> Option<(i32, i32, i32)> {
    let x = ins.arg(0)?.parse().ok()?;
    let y = ins.arg(1)?.parse().ok()?;
    let mask = ins.arg(2).and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((x, y, mask))
}

impl<'a> Player<'a> {
    /// Indexes the recording (frames, input, first layer-0 size). Nothing is
    /// drawn yet: the display is empty until [`Player::step`] or
    /// [`Player::seek`].
    pub fn new(data: &'a [u8]) -> Self {
        let mut parser = parser();
        let mut frames = Vec::new();
        let mut inputs: Vec<RecordedInput> = Vec::new();
        let mut initial_size = None;
        let mut parse_error = None;
        let mut pos = 0usize;
        let mut frame_start = 0usize;
        let mut first_ts: Option<i64> = None;
        let mut last_ts: Option<i64> = None;
        let mut last_time = 0u64;
        while pos < data.len() {
            let (ins, used) = match parser.parse(&data[pos..]) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                Err(e) => {
                    parse_error = Some((pos, e));
                    break;
                }
            };
            match ins.opcode() {
                "sync" => {
                    let ts = ins.arg(0).and_then(|t| t.parse::<i64>().ok());
                    let first = *first_ts.get_or_insert(ts.unwrap_or(0));
                    let ts = ts.or(last_ts).unwrap_or(first);
                    let rel = u64::try_from(ts.saturating_sub(first)).unwrap_or(0);
                    last_time = last_time.max(rel);
                    last_ts = Some(ts);
                    frames.push(FrameInfo {
                        time_ms: last_time,
                        timestamp: ts,
                        start: frame_start,
                        end: pos + used,
                    });
                    frame_start = pos + used;
                }
                "size" if initial_size.is_none() && ins.arg(0) == Some("0") => {
                    let w = ins.arg(1).and_then(|v| v.parse::<u32>().ok());
                    let h = ins.arg(2).and_then(|v| v.parse::<u32>().ok());
                    if let (Some(w), Some(h)) = (w, h)
                        && w > 0
                        && h > 0
                    {
                        initial_size = Some((w, h));
                    }
                }
                "key" if ins.arg_count() >= 2 => {
                    let keysym = ins.arg(0).and_then(|k| k.parse::<i64>().ok());
                    let pressed = ins.arg(1).and_then(|p| p.parse::<i64>().ok());
                    if let (Some(keysym), Some(pressed)) = (keysym, pressed) {
                        let ts = ins.arg(2).and_then(|t| t.parse().ok());
                        inputs.push(RecordedInput {
                            time_ms: 0,
                            timestamp: ts.or(last_ts).unwrap_or(0),
                            event: InputEvent::Key {
                                keysym: keysym as u32,
                                pressed: pressed != 0,
                            },
                        });
                    }
                }
                "mouse" if ins.arg_count() >= 2 => {
                    if let Some((x, y, mask)) = mouse_args(&ins) {
                        let ts = ins.arg(3).and_then(|t| t.parse().ok());
                        inputs.push(RecordedInput {
                            time_ms: 0,
                            timestamp: ts.or(last_ts).unwrap_or(0),
                            event: InputEvent::Mouse { x, y, mask },
                        });
                    }
                }
                _ => {}
            }
            pos += used;
        }
        let first = first_ts.unwrap_or(0);
        for input in &mut inputs {
            input.time_ms = u64::try_from(input.timestamp.saturating_sub(first)).unwrap_or(0);
        }
        Player {
            data,
            frames,
            inputs,
            initial_size,
            parse_error,
            display: Display::new(),
            applied: 0,
            mouse: None,
            apply_errors: 0,
            keyframes: Vec::new(),
            keyframe_interval_ms: Some(DEFAULT_KEYFRAME_INTERVAL_MS),
            keyframe_budget: DEFAULT_KEYFRAME_BUDGET,
        }
    }

    /// Snapshot the display every `interval_ms` of recording time while
    /// playing forward, so that [`Player::seek`] backwards (or far forward
    /// over already played parts) restarts from the nearest snapshot instead
    /// of the beginning. `None` disables snapshots (sequential playback,
    /// e.g. video rendering). Snapshots beyond `budget_bytes` are thinned out
    /// (every other one dropped and the interval doubled).
    pub fn set_keyframes(&mut self, interval_ms: Option<u64>, budget_bytes: usize) {
        self.keyframe_interval_ms = interval_ms.map(|i| i.max(1));
        self.keyframe_budget = budget_bytes;
        if interval_ms.is_none() {
            self.keyframes.clear();
        }
    }

    /// All frames, in order.
    pub fn frames(&self) -> &[FrameInfo] {
        &self.frames
    }

    /// Recorded input (keys and mouse) in recording order.
    pub fn inputs(&self) -> &[RecordedInput] {
        &self.inputs
    }

    /// Time of the last frame, in milliseconds since the first (0 if none).
    pub fn duration(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.time_ms)
    }

    /// The first non-empty `size` of the default layer.
    pub fn initial_size(&self) -> Option<(u32, u32)> {
        self.initial_size
    }

    /// Where and why parsing stopped early, if it did.
    pub fn parse_error(&self) -> Option<&(usize, ParseError)> {
        self.parse_error.as_ref()
    }

    /// The display as of the frames applied so far.
    pub fn display(&self) -> &Display {
        &self.display
    }

    /// Number of frames applied so far (the next frame's index).
    pub fn position(&self) -> usize {
        self.applied
    }

    /// Time of the last applied frame (`None` before the first).
    pub fn current_time(&self) -> Option<u64> {
        self.applied
            .checked_sub(1)
            .and_then(|i| self.frames.get(i))
            .map(|f| f.time_ms)
    }

    /// Mouse position as of the frames applied so far.
    pub fn mouse_position(&self) -> Option<(i32, i32)> {
        self.mouse
    }

    /// Instructions the display rejected (bad arguments, undecodable images).
    pub fn apply_errors(&self) -> u64 {
        self.apply_errors
    }

    /// Applies the next frame; returns it, or `None` at the end.
    pub fn step(&mut self) -> Option<&FrameInfo> {
        let index = self.applied;
        let frame = self.frames.get(index)?;
        let (start, end) = (frame.start, frame.end);
        let mut parser = parser();
        let mut pos = start;
        while pos < end {
            let Ok(Some((ins, used))) = parser.parse(&self.data[pos..end]) else {
                break;
            };
            match ins.opcode() {
                "mouse" => {
                    if let Some((x, y, _)) = mouse_args(&ins) {
                        self.mouse = Some((x, y));
                    }
                }
                "key" | "touch" => {}
                _ => {
                    if self.display.apply(&ins.to_owned()).is_err() {
                        self.apply_errors += 1;
                    }
                }
            }
            pos += used;
        }
        self.applied = index + 1;
        self.maybe_keyframe();
        self.frames.get(index)
    }

    fn maybe_keyframe(&mut self) {
        let Some(interval) = self.keyframe_interval_ms else {
            return;
        };
        let Some(time) = self.current_time() else {
            return;
        };
        let last = self.keyframes.last().map_or((0, 0), |k| {
            let t = k
                .applied
                .checked_sub(1)
                .and_then(|i| self.frames.get(i))
                .map_or(0, |f| f.time_ms);
            (k.applied, t)
        });
        if self.applied <= last.0 || time < last.1.saturating_add(interval) {
            return;
        }
        self.keyframes.push(Keyframe {
            applied: self.applied,
            display: self.display.clone(),
            mouse: self.mouse,
        });
        let bytes: usize = self.keyframes.iter().map(|k| k.display.heap_bytes()).sum();
        if bytes > self.keyframe_budget {
            let mut i = 0usize;
            self.keyframes.retain(|_| {
                i += 1;
                i.is_multiple_of(2)
            });
            self.keyframe_interval_ms = Some(interval.saturating_mul(2));
        }
    }

    /// Number of keyframe snapshots held.
    pub fn keyframe_count(&self) -> usize {
        self.keyframes.len()
    }

    /// Shows the picture at `time_ms` (milliseconds since the first frame):
    /// the display after the last frame whose time is at or before it.
    /// Returns the number of frames applied (0 only for an empty recording).
    pub fn seek(&mut self, time_ms: u64) -> usize {
        let target = self.frames.partition_point(|f| f.time_ms <= time_ms).max(1);
        let target = target.min(self.frames.len());
        let best = self
            .keyframes
            .iter()
            .rposition(|k| k.applied <= target)
            .filter(|&i| {
                let k = &self.keyframes[i];
                self.applied > target || k.applied > self.applied
            });
        if let Some(i) = best {
            let k = &self.keyframes[i];
            self.display = k.display.clone();
            self.mouse = k.mouse;
            self.applied = k.applied;
        } else if self.applied > target {
            self.display = Display::new();
            self.mouse = None;
            self.applied = 0;
        }
        while self.applied < target {
            if self.step().is_none() {
                break;
            }
        }
        self.applied
    }

    /// The composited picture (width, height, RGBA) at `time_ms`.
    pub fn screenshot_at(&mut self, time_ms: u64) -> (u32, u32, Vec<u8>) {
        self.seek(time_ms);
        self.display.screenshot()
    }

    /// The instructions of frame `index`, parsed (for inspection/tools).
    pub fn frame_instructions(&self, index: usize) -> Vec<Instruction> {
        let Some(frame) = self.frames.get(index) else {
            return Vec::new();
        };
        let mut parser = parser();
        let mut out = Vec::new();
        let mut pos = frame.start;
        while pos < frame.end {
            let Ok(Some((ins, used))) = parser.parse(&self.data[pos..frame.end]) else {
                break;
            };
            out.push(ins.to_owned());
            pos += used;
        }
        out
    }
}
