//! The firmware's logic, independent of the board: frames in, inference, frames out.

use bnas_device::link;
use bnas_device::{Input, Model};
use embedded_io::{Read, Write};

/// A free-running tick counter that counts up (wrapping).
pub trait Clock {
    fn ticks(&mut self) -> u32;
}

/// Instructions for `ticks` of Timer0 under `-icount shift=7`: round(ticks / 3.2).
pub fn instructions(ticks: u32) -> u32 {
    ((u64::from(ticks) * 10 + 16) / 32) as u32
}

/// Buffers the caller owns (statics on the device, sized from the model at build time).
pub struct Buffers<'b> {
    pub arena: &'b mut [u32],
    pub logits: &'b mut [f32],
    pub rx: &'b mut [u8],
    pub tx_raw: &'b mut [u8],
    pub tx: &'b mut [u8],
    pub node_ticks: &'b mut [u32],
}

/// Peak stack in bytes and stack size, from the painted region (`None` off-target).
pub type StackProbe = fn() -> (u32, u32);

#[inline(never)]
fn empty_call() {
    core::hint::black_box(());
}

fn send<S: Write>(serial: &mut S, b: &mut Buffers<'_>, tag: u8, parts: &[&[u8]]) {
    if let Some(n) = link::encode_frame(tag, parts, b.tx_raw, b.tx) {
        let _ = serial.write_all(b.tx.get(..n).unwrap_or(&[]));
    }
}

fn send_words<S: Write>(serial: &mut S, b: &mut Buffers<'_>, tag: u8, words: &[u32], floats: &[f32]) {
    // Up to 16 header words; the floats follow without a copy.
    let mut body = [0u8; 64];
    let mut n = 0;
    for w in words {
        if let Some(dst) = body.get_mut(n..n + 4) {
            dst.copy_from_slice(&w.to_le_bytes());
            n += 4;
        }
    }
    let floats: &[u8] = bytemuck::cast_slice(floats);
    let head = body.get(..n).unwrap_or(&[]);
    if let Some(n) = link::encode_frame(tag, &[head, floats], b.tx_raw, b.tx) {
        let _ = serial.write_all(b.tx.get(..n).unwrap_or(&[]));
    }
}

fn bnas_device_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// Reads bytes up to a 0x00 delimiter into `rx`; returns the frame length, or `None` on overflow
/// (the rest of that frame is skipped).
fn read_frame<S: Read>(serial: &mut S, rx: &mut [u8]) -> Option<usize> {
    let mut n = 0usize;
    let mut overflow = false;
    let mut byte = [0u8; 1];
    loop {
        if serial.read(&mut byte).ok()? == 0 {
            continue;
        }
        if byte[0] == 0 {
            return if overflow { None } else { Some(n) };
        }
        match rx.get_mut(n) {
            Some(slot) => {
                *slot = byte[0];
                n += 1;
            }
            None => overflow = true,
        }
    }
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, x) in v.iter().enumerate() {
        if v.get(best).is_some_and(|b| x > b) {
            best = i;
        }
    }
    best as u32
}

/// Serves images forever: announces itself, then answers each frame (see `bnas_device::link`).
pub fn serve<S: Read + Write, C: Clock>(
    model_bytes: &[u8],
    serial: &mut S,
    clock: &mut C,
    b: &mut Buffers<'_>,
    stack: StackProbe,
) -> ! {
    let model = match Model::parse(model_bytes) {
        Ok(m) => m,
        Err(_) => {
            send(serial, b, link::TAG_ERROR, &[&10u32.to_le_bytes()]);
            loop {
                core::hint::spin_loop();
            }
        }
    };
    let t0 = clock.ticks();
    empty_call();
    let empty = clock.ticks().wrapping_sub(t0);
    let (c, h, w) = model.input_shape();
    let ready = [
        link::LINK_VERSION,
        (c * h * w) as u32,
        model.classes() as u32,
        model.arena_bytes() as u32,
        model_bytes.len() as u32,
        empty,
    ];
    send_words(serial, b, link::TAG_READY, &ready, &[]);
    loop {
        let Some(n) = read_frame(serial, b.rx) else {
            send(serial, b, link::TAG_ERROR, &[&3u32.to_le_bytes()]);
            continue;
        };
        let Some((tag, body)) = b.rx.get_mut(..n).and_then(link::decode_frame) else {
            send(serial, b, link::TAG_ERROR, &[&1u32.to_le_bytes()]);
            continue;
        };
        match tag {
            link::TAG_IMAGE => {
                let t0 = clock.ticks();
                let r = model.infer(Input::U8(body), b.arena, b.logits);
                let ticks = clock.ticks().wrapping_sub(t0);
                let instr = instructions(ticks).wrapping_sub(instructions(empty));
                let status = match r {
                    Ok(()) => 0,
                    Err(_) => 20,
                };
                let words = [status, argmax(b.logits), ticks.wrapping_sub(empty), instr];
                let logits: &[f32] = b.logits;
                let mut body = [0u8; 16];
                for (dst, w) in body.chunks_exact_mut(4).zip(words) {
                    dst.copy_from_slice(&w.to_le_bytes());
                }
                if let Some(n) =
                    link::encode_frame(link::TAG_RESULT, &[&body, bnas_device_bytes(logits)], b.tx_raw, b.tx)
                {
                    let _ = serial.write_all(b.tx.get(..n).unwrap_or(&[]));
                }
            }
            link::TAG_PROFILE => {
                let stamps = &mut *b.node_ticks;
                let r = model.infer_observed(Input::U8(body), b.arena, b.logits, |i| {
                    let t = clock.ticks();
                    if let Some(s) = stamps.get_mut(i) {
                        *s = t;
                    }
                });
                let nodes = model.n_nodes().min(stamps.len().saturating_sub(1));
                // Turn stamps into per-node ticks in place, minus one empty timer read each.
                for i in 0..nodes {
                    let d = match (stamps.get(i), stamps.get(i + 1)) {
                        (Some(a), Some(z)) => z.wrapping_sub(*a).saturating_sub(empty),
                        _ => 0,
                    };
                    if let Some(s) = stamps.get_mut(i) {
                        *s = d;
                    }
                }
                let count = if r.is_ok() { nodes as u32 } else { 0 };
                let head = count.to_le_bytes();
                let ticks: &[u8] = bytemuck::cast_slice(stamps.get(..nodes).unwrap_or(&[]));
                if let Some(n) = link::encode_frame(link::TAG_PROFILE_RESULT, &[&head, ticks], b.tx_raw, b.tx) {
                    let _ = serial.write_all(b.tx.get(..n).unwrap_or(&[]));
                }
            }
            link::TAG_STATS => {
                let (peak, size) = stack();
                send_words(serial, b, link::TAG_STATS_RESULT, &[peak, size], &[]);
            }
            _ => {
                send(serial, b, link::TAG_ERROR, &[&2u32.to_le_bytes()]);
            }
        }
    }
}
