"""Device drivers: one module per physical input or output of the bench (GPIO, NFC, audio, serial, power).

Each driver is a small protocol with a real backend (the bench's hardware) and a sim backend (the
virtual Pi), so a test drives a button or a tag the same way on both. The driver issues fill this in.
"""
