"""The metric networks of NTA-IoU and NTL-IoU: a tiny vehicle detector and a lane-line segmenter, trained on
SynthStreet ground truth of the training seeds and shipped in faithfusion/eval/weights/metricnets/."""
