"""The extension API: the component contract and the registry that finds components.

The other modules in this folder are only the old homes of classes that registered models
pickled (feature_transform, torch_model, torch_trainer); nothing new goes there.
"""
