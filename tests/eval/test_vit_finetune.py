"""`ssl-bench eval --protocol vit_finetune`: ViT fine-tuning with layer-wise lr decay (MAE's protocol).
Checked: each parameter's lr is lr x decay^(depth of its layer from the top), with no weight decay on
1-d parameters, positions and [CLS]; the protocol runs from the command line (a random-init digits
ViT, few labels, one epoch) and records its settings; a non-ViT backbone is one line."""
import json

import pytest
from torch import nn

from ssl_bench.backbones import build_backbone
from ssl_bench.cli import main
from ssl_bench.eval.vit_finetune import layer_decay_groups

TINY = {"arch": "vit_tiny_patch16_224", "img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 3, "num_heads": 2}


def test_layer_wise_lr_decay_per_parameter():
    net, dim = build_backbone("vit", **TINY)
    classifier = nn.Sequential(net, nn.Linear(dim, 10))
    groups = layer_decay_groups(classifier, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert len(lr_of) == sum(1 for _ in classifier.parameters())       # every parameter, once
    vit = net.vit
    depth = 3
    for name, p in vit.named_parameters():
        if name.startswith("blocks."):
            i = int(name.split(".")[1]) + 1                               # blocks counted from 1
            expected = 0.5 ** (depth + 1 - i)
        elif name.startswith(("patch_embed", "cls_token", "pos_embed")):
            expected = 0.5 ** (depth + 1)
        else:                                                             # final norm
            expected = 1.0
        assert lr_of[id(p)] == pytest.approx(expected), name
        no_decay = p.ndim <= 1 or name in ("cls_token", "pos_embed")
        assert wd_of[id(p)] == (0.0 if no_decay else 0.05), name
    assert lr_of[id(classifier[1].weight)] == lr_of[id(classifier[1].bias)] == 1.0
    assert wd_of[id(classifier[1].weight)] == 0.05 and wd_of[id(classifier[1].bias)] == 0.0


def test_vit_finetune_from_the_cli_and_refuses_a_cnn(repo, tmp_path, capsys):
    config = repo / "configs/digits/mae.yaml"
    assert main(["eval", "--random-init", "--config", str(config), "--protocol", "vit_finetune", "--epochs", "1",
                 "--blr", "4e-3", "--warmup_epochs", "1", "--label-fraction", "0.2", "--run.dir", str(tmp_path)]) == 0
    (path,) = (tmp_path / "random_init-digits-seed0/evals").glob("vit_finetune-*labels0.2*.json")
    result = json.loads(path.read_text())
    assert result["layer_decay"] == 0.65 and result["blr"] == 4e-3 and result["label_smoothing"] == 0.1
    assert 0.0 <= result["vit_finetune_top1"] <= result["vit_finetune_top5"] <= 100.0
    capsys.readouterr()
    assert main(["eval", "--random-init", "--config", str(repo / "configs/digits/simclr.yaml"), "--protocol",
                 "vit_finetune", "--epochs", "1", "--run.dir", str(tmp_path / "cnn")]) == 2
    err = capsys.readouterr().err.strip()
    assert "protocol vit_finetune needs a ViT backbone" in err and "\n" not in err
