"""Datasets: the embedded and full MNIST, CIFAR/SVHN, users' npz and labels files, stratified splits."""
