//! Parameters (trainable tensors) and buffers (batch-norm running statistics), stored on a
//! backend, named so that checkpoints and exports can find them.

use super::backend::{Backend, BinWeights};

/// Which optimizer updates a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Group {
    /// Network weights (SGD).
    Weight,
    /// Architecture parameters alpha (Adam), search only.
    Arch,
}

/// Index of a parameter in its `ParamStore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// Index of a buffer in its `ParamStore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufId(pub usize);

pub struct Param<B: Backend> {
    pub name: String,
    pub shape: Vec<usize>,
    pub group: Group,
    pub value: B::Buf,
    /// For binary-conv weights `(c_out, c_in, k*k)`: the weight is binarized before use.
    pub binary: Option<(usize, usize, usize)>,
}

pub struct Buffer<B: Backend> {
    pub name: String,
    pub shape: Vec<usize>,
    pub value: B::Buf,
}

/// All parameters of a network, plus the binarized weights of the current step. The tape
/// borrows it immutably during a pass.
pub struct ParamStore<B: Backend> {
    pub params: Vec<Param<B>>,
    /// `bin[p]` holds the sign and beta of binary weight `p` for the coming forward pass.
    bin: Vec<Option<BinWeights<B>>>,
}

impl<B: Backend> Default for ParamStore<B> {
    fn default() -> Self {
        Self { params: Vec::new(), bin: Vec::new() }
    }
}

/// Non-trainable state updated during the forward pass (batch-norm running statistics).
pub struct Buffers<B: Backend> {
    pub list: Vec<Buffer<B>>,
}

impl<B: Backend> Default for Buffers<B> {
    fn default() -> Self {
        Self { list: Vec::new() }
    }
}

impl<B: Backend> Buffers<B> {
    pub fn add(&mut self, backend: &B, name: String, shape: Vec<usize>, init: Vec<f32>) -> BufId {
        self.list.push(Buffer { name, shape, value: backend.upload(&init) });
        BufId(self.list.len() - 1)
    }

    pub fn get(&self, id: BufId) -> &B::Buf {
        &self.list[id.0].value
    }

    /// Two buffers mutably at once (a batch norm's running mean and variance).
    pub fn pair_mut(&mut self, a: BufId, b: BufId) -> (&mut B::Buf, &mut B::Buf) {
        assert!(a.0 < b.0, "Buffers::pair_mut expects a < b");
        let (lo, hi) = self.list.split_at_mut(b.0);
        (&mut lo[a.0].value, &mut hi[0].value)
    }
}

impl<B: Backend> ParamStore<B> {
    pub fn add(&mut self, backend: &B, name: String, shape: Vec<usize>, group: Group, init: Vec<f32>) -> ParamId {
        debug_assert_eq!(shape.iter().product::<usize>(), init.len(), "{name}");
        self.params.push(Param { name, shape, group, value: backend.upload(&init), binary: None });
        self.bin.push(None);
        ParamId(self.params.len() - 1)
    }

    /// A binary conv weight `[c_out, c_in, k, k]`.
    pub fn add_binary(&mut self, backend: &B, name: String, shape: [usize; 4], init: Vec<f32>) -> ParamId {
        let id = self.add(backend, name, shape.to_vec(), Group::Weight, init);
        self.params[id.0].binary = Some((shape[0], shape[1], shape[2] * shape[3]));
        id
    }

    pub fn get(&self, id: ParamId) -> &Param<B> {
        &self.params[id.0]
    }

    /// Binarizes every binary weight for the coming forward pass. With `write_back` (training)
    /// the latent weights are replaced by their centred and clamped form, as the reference
    /// does before each step; without it (evaluation, export) they are left untouched.
    pub fn refresh_binary(&mut self, backend: &B, write_back: bool) {
        for (p, slot) in self.params.iter_mut().zip(self.bin.iter_mut()) {
            if let Some((c_out, c_in, kk)) = p.binary {
                let bw = backend.binarize_weights(&p.value, c_out, c_in, kk);
                if write_back {
                    p.value = backend.copy(&bw.centered);
                }
                *slot = Some(bw);
            }
        }
    }

    /// The binarized form of binary weight `id` (after `refresh_binary`).
    pub fn binarized(&self, id: ParamId) -> &BinWeights<B> {
        self.bin[id.0].as_ref().unwrap_or_else(|| panic!("{}: refresh_binary was not called", self.params[id.0].name))
    }

    pub fn ids(&self, group: Group) -> impl Iterator<Item = ParamId> + '_ {
        self.params.iter().enumerate().filter(move |(_, p)| p.group == group).map(|(i, _)| ParamId(i))
    }

    pub fn count(&self, group: Group) -> usize {
        self.params.iter().filter(|p| p.group == group).map(|p| p.shape.iter().product::<usize>()).sum()
    }
}
