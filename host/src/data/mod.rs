//! Datasets: Fashion-MNIST (IDX), CIFAR-10 (binary batches), image folders; augmentation and background batching.
