"""disk_count study (paper 002): ResNet classification of speckle by number of disks."""
