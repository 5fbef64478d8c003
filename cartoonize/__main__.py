from cartoonize.cli import main

main()
