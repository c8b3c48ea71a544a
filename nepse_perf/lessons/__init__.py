"""What only the notebooks use: workbook helpers, lesson demos and simulators."""
