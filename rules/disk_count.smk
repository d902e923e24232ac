# disk_count study: rules are added by the study's issue; STUDY_TARGETS["disk_count"] lists its final outputs.
STUDY_TARGETS["disk_count"] = lambda: []
