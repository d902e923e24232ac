# dynamics study: rules are added by the study's issue; STUDY_TARGETS["dynamics"] lists its final outputs.
STUDY_TARGETS["dynamics"] = lambda: []
