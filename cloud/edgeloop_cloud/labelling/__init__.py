"""The labelling round trip: the queue out to a labelling tool (Label Studio tasks, CSV) with
decrypted copies of the images kept outside the data container, and the answers back into
``labels/``."""
