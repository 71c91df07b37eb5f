//! Fuzzes `Model::parse` and `infer` over arbitrary bytes. The first byte is a mode: bit 0 fixes
//! up the CRC (so the structural checks are reached), bit 1 the payload length as well. The rest
//! is copied to a 4-byte aligned buffer, as the firmware's flash image is.
#![no_main]

use bnas_device::{format, Input, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let mut words = vec![0u32; body.len().div_ceil(4)];
    let bytes: &mut [u8] = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..body.len()];
    bytes.copy_from_slice(body);
    if mode & 1 == 1 && bytes.len() >= format::HEADER_BYTES {
        // Bit 1 also sets the payload length to the bytes there are (whole words), so that
        // inserted and erased bytes reach the structural checks too; without it the length is
        // the mutator's, and only the payload it names is checksummed.
        if mode & 2 == 2 {
            let payload = (bytes.len() - format::HEADER_BYTES) / 4 * 4;
            bytes[8..12].copy_from_slice(&(payload as u32).to_le_bytes());
        }
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let end = format::HEADER_BYTES.saturating_add(len).min(bytes.len());
        let crc = format::crc32(&bytes[format::HEADER_BYTES..end]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(model) = Model::parse(bytes) else { return };
    let (c, h, w) = model.input_shape();
    if model.arena_words() > 1 << 20 || c * h * w > 1 << 16 {
        return;
    }
    let mut arena = vec![0u32; model.arena_words()];
    let mut logits = vec![0.0f32; model.classes()];
    let _ = model.infer(Input::U8(&vec![mode; c * h * w]), &mut arena, &mut logits);
    // f32 input made of the bytes themselves (NaN, infinities and subnormals among them), cycled.
    let floats: Vec<f32> = body
        .chunks_exact(4)
        .filter_map(|b| b.try_into().ok())
        .map(f32::from_le_bytes)
        .cycle()
        .take(c * h * w)
        .collect();
    let _ = model.infer(Input::F32(&floats), &mut arena, &mut logits);
});
