//! A tensor is a storage buffer of f32 (or u32) elements and a row-major shape.

#[derive(Debug, Clone)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
    /// Byte offset of element 0 in `buffer`: 0, except for the windows an op binds when it
    /// splits work that is larger than one storage binding (`Tensor::window`).
    pub offset: u64,
}

impl Tensor {
    pub fn new(buffer: wgpu::Buffer, shape: Vec<usize>) -> Tensor {
        Tensor {
            buffer,
            shape,
            offset: 0,
        }
    }

    /// Elements `first..first + product(shape)` of this tensor as a tensor of their own, bound
    /// by offset (the offset must meet the adapter's storage offset alignment; ops that split
    /// work choose their chunk boundaries for that).
    pub fn window(&self, first: usize, shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        assert!(
            first + len <= self.len(),
            "window {first}+{len} past the end of {:?}",
            self.shape
        );
        Tensor {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
            offset: self.offset + first as u64 * 4,
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same buffer seen with another shape of the same or fewer elements (used when an
    /// activation buffer is reused for a smaller tensor).
    pub fn view(&self, shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        assert!(
            self.offset + (len * 4) as u64 <= self.buffer.size(),
            "view {shape:?} does not fit the buffer of {:?}",
            self.shape
        );
        Tensor {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
            offset: self.offset,
        }
    }

    /// The last dimension, e.g. channels of an [N, P, C] activation.
    pub fn cols(&self) -> usize {
        *self.shape.last().unwrap_or(&1)
    }

    /// The product of all but the last dimension.
    pub fn rows(&self) -> usize {
        self.len() / self.cols().max(1)
    }
}
