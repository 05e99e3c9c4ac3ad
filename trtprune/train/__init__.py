"""Training and fine-tuning: the loop, a training job as data, its resume state, data parallel under torchrun.

In: a model, a dataset and a recipe. Out: trained weights and their metrics."""
