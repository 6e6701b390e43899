"""One baseline epoch: the classic DataLoader pipeline against the in-memory trainer, side by side.

Usage:
    python benchmarks/trainer_vs_dataloader.py --data-dir ../shared/mnist [--device cpu] [--repeats 3]

Both train the same network (784-128-10, relu, log-softmax, Adadelta lr 1.0, batch 64) for one
epoch over all 60,000 training images and then evaluate the 10,000 test images. The classic
pipeline is the one of pytorch/examples mnist: ToTensor + Normalize per image, a shuffled
DataLoader of batch 64, a test DataLoader of batch 1000. Prints both times, the ratio, this
machine's matrix-multiply rate and the fraction of it that the trainer's epoch reaches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from trainer import TrainConfig, build_model, load_mnist, resolve_device, split, train
from trainer.data import MEAN, STD, resolve_data_dir
from trainer.data import _torchvision_root as torchvision_root


def classic_epoch(root: str, device: torch.device) -> float:
    """Seconds for one epoch of training plus the test pass, the pytorch/examples way."""
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    train_set = datasets.MNIST(root, train=True, transform=transform)
    test_set = datasets.MNIST(root, train=False, transform=transform)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000)
    torch.manual_seed(1)
    model = build_model(TrainConfig()).to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    start = time.perf_counter()
    model.train()
    for data, target in train_loader:
        data, target = data.to(device).flatten(1), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data.to(device).flatten(1))
            correct += int((output.argmax(1) == target.to(device)).sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def trainer_epoch(root: str, device: torch.device) -> float:
    """Seconds for one epoch of the project's trainer (training, validation and test passes)."""
    splits = split(load_mnist(root, device), validation=0)
    result = train(TrainConfig(epochs=1, device=str(device)), splits)
    return result.history[0].seconds


def epoch_flops(n_train: int = 60_000, n_eval: int = 10_000) -> float:
    """FLOPs of one baseline epoch: 3 matrix products per layer per training image, 1 per evaluated.

    With ``validation=0`` the test set is the validation set and is evaluated once per epoch.
    """
    macs = 784 * 128 + 128 * 10
    return 2 * macs * (3 * n_train + n_eval)


def sgemm_rate(size: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matrix-multiply rate, FLOP/s, on square matrices."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR, else ./data)")
    parser.add_argument("--device", default="cpu", help="device for both pipelines")
    parser.add_argument("--repeats", type=int, default=5, help="epochs timed per pipeline")
    args = parser.parse_args()
    device = resolve_device(args.device)
    root = str(torchvision_root(resolve_data_dir(args.data_dir).resolve(), download=False))
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    trainer_epoch(root, device)  # warm-up: loads the tensors once, as a search would
    # Interleaved, so that both see the same spells of a noisy machine; the best of the repeats
    # is the figure least disturbed by other work (as timeit reports), the median beside it.
    ours, classic, rates = [], [], []
    for _ in range(args.repeats):
        ours.append(trainer_epoch(root, device))
        classic.append(classic_epoch(root, device))
        rates.append(sgemm_rate())
    flops = epoch_flops()
    for name, pick in (("best", min), ("median", statistics.median)):
        mine, theirs = pick(ours), pick(classic)
        rate = max(rates) if pick is min else statistics.median(rates)
        print(f"{name} of {args.repeats}:")
        print(f"  classic DataLoader epoch: {theirs:8.3f} s")
        print(f"  trainer epoch:            {mine:8.3f} s")
        print(f"  speed-up:                 {theirs / mine:8.1f}x")
        print(f"  sgemm rate:               {rate / 1e9:8.1f} GFLOP/s")
        print(
            f"  trainer epoch rate:       {flops / mine / 1e9:8.1f} GFLOP/s "
            f"({flops / 1e9:.1f} GFLOP), {flops / mine / rate:.0%} of sgemm"
        )


if __name__ == "__main__":
    main()
