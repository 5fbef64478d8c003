"""The PyAV plumbing and other frame I/O: `files` (opening inputs, encoders, atomic outputs), `capture`
(cameras and live sources), `outputs` (webcam recorder and virtual camera), `preview` (the preview
window) and `mjpeg` (the browser preview server)."""
