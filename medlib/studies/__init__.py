"""What the notebooks call, one module per step of the study; each function is a short sequence of library calls
(load, train, evaluate, save per the output contract), and the notebooks hold the loops over what is compared.

=====================  =======================================================================
``setup``              profile, seeds, device, models, datasets (with skips), prompts
``data_prep``          notebook 01's tables
``runs``               evaluated runs: zero-shot, fine-tune with the engine, retrieval; earlier runs
``few_shot``           label efficiency: nested k-shot draws and their runs (notebook 04)
``remedies``           class imbalance: remedies, thresholds, choosing on validation (notebook 05)
``sota``               the CNN baseline and measured-vs-published tables (notebook 06)
``comparisons``        paired differences between methods (notebooks 06, 07)
``general_retrieval``  small-data caption fine-tuning on Flickr30K / COCO (notebook 07)
=====================  =======================================================================
"""
