"""Recipes: the models more than one chapter uses, each built once and shared through the artifact cache.

* :mod:`.base` — the lab's pretrained "vanilla" base, and the held-out evaluation every chapter shares;
* :mod:`.lab_grpo` — R1-Zero's GRPO on that base: the RL chapter's easy case, the distillation teacher;
* :mod:`.hard_task` — the RL hard task's bases (the lab base pretrained further on a harder task).
* :mod:`.gpu_stages` — the recipes' work as counts, for each chapter's gpu time estimate.

Chapters import recipes and the library, never another chapter.
"""
