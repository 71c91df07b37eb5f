//! Drivers for the two ARM CMSDK peripherals of QEMU's mps2-an386 board the firmware uses:
//! UART0 (an `embedded-io` serial port) and Timer0 (a free-running down-counter).
//! A real board supplies its own HAL types with the same traits to `app::serve`.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

/// CMSDK APB UART: DATA +0x0, STATE +0x4 (bit0 TX full, bit1 RX full), CTRL +0x8
/// (bit0 TX enable, bit1 RX enable), BAUDDIV +0x10 (>= 16).
pub struct Uart {
    base: usize,
}

const STATE_TX_FULL: u32 = 1;
const STATE_RX_FULL: u32 = 2;

impl Uart {
    /// UART0 of mps2-an386.
    pub const UART0: usize = 0x4000_4000;

    /// Enables TX and RX (without TX enable the first write hangs).
    ///
    /// # Safety
    /// `base` must be a CMSDK UART that nothing else drives.
    pub unsafe fn new(base: usize) -> Self {
        write_volatile((base + 0x10) as *mut u32, 16);
        write_volatile((base + 0x8) as *mut u32, 0b11);
        Uart { base }
    }

    fn state(&self) -> u32 {
        // SAFETY: a register of the UART this value owns (see `new`).
        unsafe { read_volatile((self.base + 0x4) as *const u32) }
    }

    fn read_byte(&self) -> Option<u8> {
        if self.state() & STATE_RX_FULL == 0 {
            return None;
        }
        // SAFETY: as above.
        Some(unsafe { read_volatile(self.base as *const u32) } as u8)
    }

    fn write_byte(&self, b: u8) {
        while self.state() & STATE_TX_FULL != 0 {}
        // SAFETY: as above.
        unsafe { write_volatile(self.base as *mut u32, u32::from(b)) }
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Infallible;
}

impl embedded_io::Read for Uart {
    /// Blocks for the first byte, then takes what is already there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            let b = loop {
                match self.read_byte() {
                    Some(b) => break Some(b),
                    None if n == 0 => continue,
                    None => break None,
                }
            };
            match b {
                Some(b) => {
                    *slot = b;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        buf.iter().for_each(|&b| self.write_byte(b));
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// CMSDK APB timer: CTRL +0x0 (bit0 enable), VALUE +0x4 (counts down), RELOAD +0x8.
/// At 25 MHz virtual with `-icount shift=7`, instructions = round(ticks / 3.2).
pub struct Timer {
    base: usize,
}

impl Timer {
    /// Timer0 of mps2-an386.
    pub const TIMER0: usize = 0x4000_0000;

    /// Starts the timer free-running from 0xFFFF_FFFF.
    ///
    /// # Safety
    /// `base` must be a CMSDK timer that nothing else drives.
    pub unsafe fn new(base: usize) -> Self {
        write_volatile(base as *mut u32, 0);
        write_volatile((base + 0x8) as *mut u32, u32::MAX);
        write_volatile((base + 0x4) as *mut u32, u32::MAX);
        write_volatile(base as *mut u32, 1);
        Timer { base }
    }
}

impl crate::app::Clock for Timer {
    #[inline(always)]
    fn ticks(&mut self) -> u32 {
        // Counts down: negate so that later reads are larger.
        // SAFETY: a register of the timer this value owns (see `new`).
        !unsafe { read_volatile((self.base + 0x4) as *const u32) }
    }
}
