"""The label sets of the chest X-ray sources (REFERENCES.md): ChestMNIST's 14 labels, the same in NIH
ChestX-ray14's spelling with rough NIH prevalences, and the CheXpert labels of MIMIC-CXR."""

from __future__ import annotations

import numpy as np


# ChestMNIST / ChestX-ray14 order and rough NIH prevalences (realistic imbalance; hernia rare).
CHEST14 = ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
           "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia"]


NIH_NAMES = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
             "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]


CHEST14_PREV = np.array([.10, .025, .12, .18, .05, .06, .013, .05, .04, .02, .02, .015, .03, .004])


CHEXPERT = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
            "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
            "Pneumothorax", "Support Devices"]
