webroot:
  file.directory:
    - name: /srv/www
    - makedirs: True

index:
  file.managed:
    - name: /srv/www/index.html
    - contents: "hello from {{ grains['id'] }}"
    - require:
      - file: webroot
