"""``python -m sphinx.train``: train a StyleGAN2 prior (configs in ``conf/train/``).

Examples::

    python -m sphinx.data.emoji --out data/emoji64
    python -m sphinx.train +experiment=train_demo_prior
    python -m sphinx.train data=folder data.path=/my/images model=demo64 gan.steps=20000
    python -m sphinx.train +experiment=train_demo_prior resume=outputs/train/<run>/checkpoints/last.pt
"""

from sphinx.entry import hydra_entry, train_job

main = hydra_entry("train", "config", train_job)

if __name__ == "__main__":
    main()
