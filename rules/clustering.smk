# clustering study: rules are added by the study's issue; STUDY_TARGETS["clustering"] lists its final outputs.
STUDY_TARGETS["clustering"] = lambda: []
