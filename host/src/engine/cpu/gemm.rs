//! A bounds-checked wrapper over `matrixmultiply::sgemm`.

/// A strided read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `[rows, cols]` with leading dimension `ld` (>= cols).
    pub fn rows(data: &'a [f32], ld: usize) -> Self {
        Self { data, rs: ld, cs: 1 }
    }
    /// The transpose of a row-major matrix with leading dimension `ld`.
    pub fn cols(data: &'a [f32], ld: usize) -> Self {
        Self { data, rs: 1, cs: ld }
    }
    fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * self.rs + (cols - 1) * self.cs;
            assert!(last < self.data.len(), "gemm: {what} [{rows}, {cols}] overruns its buffer of {}", self.data.len());
        }
    }
}

/// `C[m, n] = A[m, k] B[k, n] + beta * C`, with C row-major of leading dimension `ldc`.
/// When `beta == 0` the prior contents of C are ignored (they may be garbage).
#[allow(clippy::too_many_arguments)] // the BLAS signature: three sizes, three operands
pub(super) fn gemm(m: usize, k: usize, n: usize, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32], ldc: usize) {
    if m == 0 || n == 0 {
        return;
    }
    a.check(m, k, "A");
    b.check(k, n, "B");
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "gemm: C [{m}, {n}] overruns its buffer of {}", c.len());
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].iter_mut().for_each(|v| *v = if beta == 0.0 { 0.0 } else { *v * beta });
        }
        return;
    }
    // SAFETY: the asserts above keep every index of A, B and C inside its slice; C does not
    // alias A or B (it is borrowed mutably).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}
