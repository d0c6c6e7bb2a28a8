"""One module per data source, each with ``load(profile, spec)`` (the splits as a DatasetBundle) and
``inputs(profile, spec)`` (the files it reads, for the prepared-split cache key).

=================  ======================================================================
``medmnist``       MedMNIST 2D through the ``medmnist`` package (PneumoniaMNIST, ChestMNIST, ...)
``chestxray14``    NIH ChestX-ray14 from its own CSV and images (ChestMNIST where it is absent)
``mimic_cxr``      MIMIC-CXR-JPG image-report pairs from a credentialed local copy
``pubmedvision``   a PubMedVision sample: image-caption pairs with the body-part label
``csv_pairs``      your own pairs: a CSV of ``image_path,caption,label``
``karpathy``       Flickr30K / COCO in the Karpathy-split layout (or a hub copy)
=================  ======================================================================
"""
