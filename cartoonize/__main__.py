from cartoonize.launch import main

main()
