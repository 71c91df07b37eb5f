//! bnas firmware for a Cortex-M4F: the model named by `BNAS_MODEL` at build time is embedded in
//! flash and served over UART0 (protocol: `bnas_device::link`). Runs on QEMU's mps2-an386; a real
//! board needs only its own UART and timer types for `app::serve`.
#![no_std]
#![no_main]

mod app;
mod cmsdk;

use core::ptr::addr_of_mut;
use cortex_m_rt::entry;

#[allow(dead_code)]
mod model {
    include!(concat!(env!("OUT_DIR"), "/model_consts.rs"));
}

/// Keeps the embedded model 4-byte aligned, so its words are read in place.
#[repr(C, align(4))]
struct Aligned<B: ?Sized>(B);

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.bnas")));

const RX_LEN: usize = bnas_device::link::max_frame_len(model::INPUT_LEN);
const RESULT_BODY: usize = 16 + 4 * model::CLASSES;
const PROFILE_BODY: usize = 4 + 4 * model::N_NODES;
const TX_BODY: usize = if RESULT_BODY > PROFILE_BODY { RESULT_BODY } else { PROFILE_BODY };

static mut ARENA: [u32; model::ARENA_WORDS] = [0; model::ARENA_WORDS];
static mut LOGITS: [f32; model::CLASSES] = [0.0; model::CLASSES];
static mut RX: [u8; RX_LEN] = [0; RX_LEN];
static mut TX_RAW: [u8; TX_BODY + 5] = [0; TX_BODY + 5];
static mut TX: [u8; bnas_device::link::max_frame_len(TX_BODY)] = [0; bnas_device::link::max_frame_len(TX_BODY)];
static mut NODE_TICKS: [u32; model::N_NODES + 1] = [0; model::N_NODES + 1];

/// Peak stack use since reset, from cortex-m-rt's `paint-stack` pattern: (peak bytes, stack bytes).
fn stack_probe() -> (u32, u32) {
    extern "C" {
        static mut _stack_start: u32;
        static mut _stack_end: u32;
    }
    let (top, bottom) = (addr_of_mut!(_stack_start) as usize, addr_of_mut!(_stack_end) as usize);
    let mut untouched = bottom;
    while untouched < top {
        // SAFETY: every address in [_stack_end, _stack_start) is RAM reserved for the stack.
        if unsafe { core::ptr::read_volatile(untouched as *const u32) } != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        untouched += 4;
    }
    ((top - untouched) as u32, (top - bottom) as u32)
}

#[entry]
fn main() -> ! {
    // SAFETY: this is the only code that touches these statics and peripherals.
    let (mut uart, mut timer, mut buffers) = unsafe {
        (
            cmsdk::Uart::new(cmsdk::Uart::UART0),
            cmsdk::Timer::new(cmsdk::Timer::TIMER0),
            app::Buffers {
                arena: &mut *addr_of_mut!(ARENA),
                logits: &mut *addr_of_mut!(LOGITS),
                rx: &mut *addr_of_mut!(RX),
                tx_raw: &mut *addr_of_mut!(TX_RAW),
                tx: &mut *addr_of_mut!(TX),
                node_ticks: &mut *addr_of_mut!(NODE_TICKS),
            },
        )
    };
    app::serve(&MODEL.0, &mut uart, &mut timer, &mut buffers, stack_probe)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Unreachable by design (bnas-device has no panicking paths); halt rather than guess.
    cortex_m::asm::udf()
}
