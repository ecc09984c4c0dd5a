"""Looking at a run: its drive from any lane shift as images (`frames`), as MP4 videos (`video`), and live in a
browser through viser (`server`, imported only by `faithfusion view`)."""
