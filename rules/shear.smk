# shear study: rules are added by the study's issue; STUDY_TARGETS["shear"] lists its final outputs.
STUDY_TARGETS["shear"] = lambda: []
